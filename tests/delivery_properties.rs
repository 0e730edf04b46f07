//! Properties of the delivery rules, over generated outcomes, chains and breaker histories:
//! backoff stays in its band, a row's next state follows from its outcome and age, the fallback
//! chain never repeats a channel and always ends, and the breaker never lets more than one probe
//! through an open circuit.

use std::time::{Duration, Instant};

use messo::config::{Delivery, Fallback};
use messo::delivery::fallback::{DeadRow, replacement};
use messo::delivery::{
    Attempt, Breaker, DoubtPolicy, Outcome, RowFacts, Sent, Step, backoff, next_step,
};
use messo::domain::{Channel, EmailAddress, Kind, Lang, Recipient};
use messo::time::Timestamp;
use proptest::prelude::*;
use serde_json::json;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Delivered {
            provider_id: Some("id".into()),
            code: None
        }),
        (0u64..4000).prop_map(|s| Outcome::Transient {
            reason: "busy".into(),
            code: None,
            retry_after: (s > 2000).then(|| Duration::from_secs(s - 2000)),
            provider_down: s % 2 == 0,
        }),
        Just(Outcome::permanent("refused")),
        Just(Outcome::Uncertain {
            reason: "timeout".into()
        }),
    ]
}

fn link() -> impl Strategy<Value = Fallback> {
    prop_oneof![
        Just(Fallback::Email),
        Just(Fallback::Sms),
        Just(Fallback::Pec),
        Just(Fallback::Office),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn backoff_stays_between_half_and_all_of_its_capped_exponential(
        attempt in 1i64..40, base in 1i64..600, extra in 0i64..86_400,
        random in prop_oneof![any::<u64>(), 0u64..4096]
    ) {
        let max = base + extra;
        let full = base.saturating_mul(1i64 << (attempt - 1).min(20)).min(max).max(1);
        let b = backoff(attempt, base, max, random);
        prop_assert!(b >= full / 2 && b <= full, "attempt {attempt}: {b} not in [{}, {full}]", full / 2);
        prop_assert!(b <= max);
    }

    #[test]
    fn the_next_state_follows_from_the_outcome_and_the_age(
        o in outcome(), attempts in 1i64..50, age in 0i64..400_000, resend in any::<bool>(),
        random in any::<u64>()
    ) {
        let policy = Delivery::default();
        let now = Timestamp(1_800_000_000);
        let row = RowFacts { attempts, created_at: now.plus(-age) };
        let sent = Sent {
            attempts: vec![Attempt { provider: "p".into(), outcome: o.clone(), started_at_ms: 0, latency_ms: 1 }],
            resent: false,
        };
        let doubt = if resend { DoubtPolicy::Resend } else { DoubtPolicy::Hold };
        let too_old = age >= policy.max_age_s;
        let step = next_step(row, &sent, &policy.retry(), doubt, now, random);
        match (&o, &step) {
            (Outcome::Delivered { .. }, Step::Delivered { .. }) => {}
            (Outcome::Permanent { .. }, Step::Dead { .. }) => {}
            (Outcome::Transient { retry_after, .. }, Step::Retry { at, in_doubt: false, .. }) => {
                prop_assert!(!too_old);
                prop_assert!(*at > now);
                if let Some(d) = retry_after {
                    prop_assert_eq!(at.0 - now.0, (d.as_secs() as i64).max(1));
                } else {
                    prop_assert!(at.0 - now.0 <= policy.backoff_max_s);
                }
            }
            (Outcome::Transient { .. }, Step::Dead { .. }) => prop_assert!(too_old),
            (Outcome::Uncertain { .. }, Step::Retry { in_doubt: true, .. }) => {
                prop_assert!(resend && !too_old);
            }
            (Outcome::Uncertain { .. }, Step::Uncertain { .. }) => prop_assert!(!resend || too_old),
            (o, s) => prop_assert!(false, "{o:?} gave {s:?}"),
        }
        // Nothing tried: back to the queue, unless too old.
        let none = Sent { attempts: vec![], resent: false };
        let step = next_step(row, &none, &policy.retry(), doubt, now, random);
        let deferred = matches!(step, Step::Deferred { .. });
        prop_assert!(deferred != too_old, "{:?} at age {}", step, age);
    }

    #[test]
    fn the_fallback_chain_never_repeats_a_channel_and_always_ends(
        chain in proptest::collection::vec(link(), 0..5),
        start in prop_oneof![Just(Channel::Email), Just(Channel::Sms), Just(Channel::Pec)],
        has_email in any::<bool>(), has_mobile in any::<bool>(), has_pec in any::<bool>(),
    ) {
        let mut chain_dedup: Vec<Fallback> = Vec::new();
        for l in chain {
            if !chain_dedup.contains(&l) {
                chain_dedup.push(l);
            }
        }
        let citizen = messo::ticket::Citizen {
            email: has_email.then(|| "a@b.it".to_owned()),
            mobile: has_mobile.then(|| "+393471234567".to_owned()),
            pec: has_pec.then(|| "a@pec.it".to_owned()),
            ..Default::default()
        };
        let payload = json!({});
        let office = EmailAddress::parse("urp@c.it").expect("an address");
        let mut channel = start;
        let mut key = "k".to_owned();
        let mut seen = vec![channel];
        for _ in 0..10 {
            let dead = DeadRow {
                ticket_id: 1, kind: Kind::Ricevuta, dedupe_key: key.clone(),
                recipient: Recipient::Citizen, channel, language: Lang::It,
                payload: payload.clone(),
            };
            match replacement(&dead, "x", &citizen, &chain_dedup, &office, false, Timestamp(0)) {
                None => return Ok(()),
                Some(r) if r.recipient == Recipient::Office => {
                    prop_assert!(chain_dedup.contains(&Fallback::Office));
                    prop_assert_eq!(r.dedupe_key, "ricevuta:k");
                    return Ok(());
                }
                Some(r) => {
                    prop_assert!(!seen.contains(&r.channel), "{} tried twice: {seen:?}", r.channel);
                    prop_assert!(r.address.fits(r.channel));
                    seen.push(r.channel);
                    channel = r.channel;
                    key = r.dedupe_key;
                }
            }
        }
        prop_assert!(false, "the chain did not end: {seen:?}");
    }

    #[test]
    fn an_open_breaker_lets_one_probe_through_at_a_time(
        events in proptest::collection::vec((0u8..4, 0u64..120), 1..60)
    ) {
        let t0 = Instant::now();
        let mut b = Breaker::new(3, Duration::from_secs(10));
        let mut now = t0;
        let mut probe_out = false;
        for (what, secs) in events {
            now += Duration::from_secs(secs);
            match what {
                0 | 1 => {
                    let was_open = b.is_open();
                    let allowed = b.acquire(now);
                    if was_open && allowed {
                        prop_assert!(!probe_out, "a second probe while one is out");
                        probe_out = true;
                    }
                    if allowed {
                        b.record(what == 0, now);
                        probe_out = false;
                    }
                }
                2 => {
                    // A probe taken and not answered yet: no other message gets through.
                    if b.is_open() && b.acquire(now) {
                        prop_assert!(!b.acquire(now));
                        b.release();
                    }
                }
                _ => b.pause(now + Duration::from_secs(secs)),
            }
            if let Some(until) = b.open_until() {
                prop_assert!(until <= now + Duration::from_secs(120) + Duration::from_secs(60));
            }
        }
    }
}
