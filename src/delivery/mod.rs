//! Delivery: getting each owed message out through a real channel, exactly as promised.
//!
//! - [`Channel`]: sends one rendered message and answers with an [`Outcome`]: delivered,
//!   transient (retry), permanent (dead, maybe fall back) or uncertain (the request may have
//!   been acted on).
//! - [`smtp`]: e-mail and PEC over SMTP, with our own connection pool so that every failure is
//!   known by the stage it happened at. [`sms`]: SMS over HTTP providers.
//! - [`Breaker`]: a circuit breaker per provider, so a provider that is down is not hammered.
//! - [`next_step`]: the pure rule that turns an outcome into the row's next state (retry with
//!   backoff and jitter, dead with fallback, uncertain held or resent by policy).
//! - [`dispatch`]: the dispatcher that leases outbox rows, sends with bounded concurrency and
//!   records every attempt in batches.

pub mod dispatch;
pub mod dkim;
pub mod file;
pub mod inad;
pub mod io;
pub mod jwt;
pub mod pdnd;
pub mod pec;
pub mod sms;
pub mod smtp;
pub mod voice;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::{Duration, Instant};

pub use messo_core::delivery::{
    Attachment, Attempt, DoubtPolicy, OutMessage, Outcome, RetryPolicy, RowFacts, Sent, Step,
    backoff, fallback, next_step,
};

/// A sending in progress: boxed, so that [`Channel`] is object-safe and the dispatcher can hold
/// any channel behind `dyn Channel`.
pub type Sending<'a> = Pin<Box<dyn Future<Output = Sent> + Send + 'a>>;

/// Something that can deliver a message: the extension point for a new way of reaching
/// people. A channel says what it is (name, how many messages at once, what to do when an
/// outcome is unknown) and whether it can take a message now; the dispatcher looks it up by
/// [`crate::domain::Channel`] and never matches on the kind of transport.
pub trait Channel: Send + Sync {
    /// Its name in attempts and logs (`smtp`, `pec`, `sms`, `file`).
    fn name(&self) -> &str;
    /// How many messages it may have in flight at once.
    fn concurrency(&self) -> usize;
    /// What happens to a message whose earlier attempt may have gone through.
    fn doubt_policy(&self) -> DoubtPolicy;
    /// Whether the channel itself finds out what became of a message in doubt (an SMS
    /// provider asked by order id), so that even under [`DoubtPolicy::Hold`] the message is
    /// handed to it rather than held unsent.
    fn checks_in_doubt(&self) -> bool {
        false
    }
    /// Whether it can take a message now (health: not every provider's circuit open).
    fn ready(&self, now: Instant) -> bool;
    /// Sends one message; `in_doubt` says an earlier attempt may have gone through.
    fn send<'a>(&'a self, msg: &'a OutMessage, in_doubt: bool) -> Sending<'a>;
}

/// The channels messages go through, by [`crate::domain::Channel`].
#[derive(Default)]
pub struct Channels {
    by_name: BTreeMap<crate::domain::Channel, Box<dyn Channel>>,
}

impl Channels {
    /// `channel` goes through `through`.
    pub fn with(mut self, channel: crate::domain::Channel, through: Box<dyn Channel>) -> Channels {
        self.by_name.insert(channel, through);
        self
    }

    /// What `channel` goes through, when configured.
    pub fn get(&self, channel: crate::domain::Channel) -> Option<&dyn Channel> {
        self.by_name.get(&channel).map(AsRef::as_ref)
    }

    /// Takes `channel` out (the CLI's test send uses one channel alone).
    pub fn take(&mut self, channel: crate::domain::Channel) -> Option<Box<dyn Channel>> {
        self.by_name.remove(&channel)
    }

    /// The channels that can take a message now.
    pub fn ready(&self, now: Instant) -> Vec<crate::domain::Channel> {
        self.by_name
            .iter()
            .filter(|(_, c)| c.ready(now))
            .map(|(n, _)| *n)
            .collect()
    }

    /// Messages all channels may have in flight together.
    pub fn concurrency(&self) -> usize {
        self.by_name.values().map(|c| c.concurrency()).sum()
    }
}

/// A circuit breaker: closed (sending), open (not sending until a time), half-open (one probe
/// in flight). Failures are the provider's own (connection refused, 5xx, timeouts), never a
/// message's (a bad number).
#[derive(Debug, Clone)]
pub struct Breaker {
    threshold: u32,
    base_cooldown: Duration,
    cooldown: Duration,
    failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

/// The longest an open circuit waits between probes.
const MAX_COOLDOWN: Duration = Duration::from_secs(60);

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            base_cooldown: cooldown,
            cooldown,
            failures: 0,
            open_until: None,
            probing: false,
        }
    }

    /// Whether a message may be tried now, without taking the probe.
    pub fn ready(&self, now: Instant) -> bool {
        match self.open_until {
            None => true,
            Some(t) => now >= t && !self.probing,
        }
    }

    /// Takes permission to send one message: always when closed; once (the probe) when the
    /// open time has passed.
    pub fn acquire(&mut self, now: Instant) -> bool {
        match self.open_until {
            None => true,
            Some(t) if now >= t && !self.probing => {
                self.probing = true;
                true
            }
            Some(_) => false,
        }
    }

    /// Records what an attempt showed of the provider's health.
    pub fn record(&mut self, healthy: bool, now: Instant) {
        if healthy {
            self.failures = 0;
            self.open_until = None;
            self.probing = false;
            self.cooldown = self.base_cooldown;
            return;
        }
        self.failures += 1;
        if self.probing {
            // The probe failed: stay open, longer each time.
            self.probing = false;
            self.cooldown = (self.cooldown * 2).min(MAX_COOLDOWN);
            self.open_until = Some(now + self.cooldown);
        } else if self.open_until.is_none() && self.failures >= self.threshold {
            self.open_until = Some(now + self.cooldown);
        }
    }

    /// The provider asked us to wait (429 with Retry-After): hold every message until then.
    pub fn pause(&mut self, until: Instant) {
        if self.open_until.is_none_or(|t| t < until) {
            self.open_until = Some(until);
        }
        self.probing = false;
    }

    /// Records how an attempt went (a failure of the provider's own counts); a rate limit with
    /// a `Retry-After` pauses every message for that long.
    pub fn observe(&mut self, outcome: &Outcome, now: Instant) {
        self.record(outcome.provider_healthy(), now);
        if let Outcome::Transient {
            retry_after: Some(d),
            provider_down: false,
            ..
        } = outcome
        {
            self.pause(now + *d);
        }
    }

    /// Releases a probe permission that was not used (the message went another way).
    pub fn release(&mut self) {
        self.probing = false;
    }

    pub fn is_open(&self) -> bool {
        self.open_until.is_some()
    }

    /// When the circuit lets a message through again (`None`: now).
    pub fn open_until(&self) -> Option<Instant> {
        self.open_until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_probes_and_closes() {
        let t0 = Instant::now();
        let mut b = Breaker::new(3, Duration::from_secs(10));
        for _ in 0..2 {
            assert!(b.acquire(t0));
            b.record(false, t0);
        }
        assert!(b.ready(t0), "two failures keep it closed");
        b.record(false, t0);
        assert!(!b.ready(t0) && !b.acquire(t0), "the third opens it");
        let later = t0 + Duration::from_secs(10);
        assert!(b.ready(later));
        assert!(b.acquire(later), "one probe");
        assert!(!b.acquire(later), "only one");
        b.record(false, later);
        assert!(
            !b.ready(later + Duration::from_secs(19)),
            "cooldown doubled"
        );
        let again = later + Duration::from_secs(20);
        assert!(b.acquire(again));
        b.record(true, again);
        assert!(!b.is_open() && b.acquire(again) && b.acquire(again));
        // A successful message resets the count of failures.
        b.record(false, again);
        b.record(false, again);
        b.record(true, again);
        b.record(false, again);
        assert!(b.ready(again));
        // Retry-After pauses it without counting a failure.
        b.pause(again + Duration::from_secs(5));
        assert!(!b.ready(again + Duration::from_secs(4)));
        assert!(b.ready(again + Duration::from_secs(5)));
    }
}
