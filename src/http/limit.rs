//! Rate limits per client (or per token) whose memory is bounded.
//!
//! A keyed limiter remembers every key it saw until it is pruned, so a flood of fresh keys (new
//! addresses, new user names) would grow it without end. [`KeyedLimit`] prunes the keys whose
//! allowance is full again (periodically, and at once when it reaches its size), and when it is
//! still full it stops adding keys: every request then shares one global allowance of the same
//! quota until pruning makes room. Memory stays at `max_keys` entries whatever the traffic.

use std::fmt;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Keys a limiter remembers when the configuration does not say (`http.max_tracked_clients`).
pub const DEFAULT_MAX_KEYS: usize = 10_000;

const NEVER: u64 = u64::MAX;

/// A keyed rate limit with a bounded number of keys and a global fallback.
pub struct KeyedLimit<K: Hash + Eq + Clone> {
    keyed: DefaultKeyedRateLimiter<K>,
    overflow: DefaultDirectRateLimiter,
    max_keys: usize,
    started: Instant,
    /// Milliseconds after `started` of the last prune made because the map was full.
    last_prune_ms: AtomicU64,
    /// Requests decided by the global fallback because the map was full.
    overflowed: AtomicU64,
}

impl<K: Hash + Eq + Clone> fmt::Debug for KeyedLimit<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedLimit")
            .field("keys", &self.keyed.len())
            .field("max_keys", &self.max_keys)
            .finish()
    }
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    /// `quota` per key; at most `max_keys` keys (at least 1).
    pub fn new(quota: Quota, max_keys: usize) -> KeyedLimit<K> {
        KeyedLimit {
            keyed: RateLimiter::keyed(quota),
            overflow: RateLimiter::direct(quota),
            max_keys: max_keys.max(1),
            started: Instant::now(),
            last_prune_ms: AtomicU64::new(NEVER),
            overflowed: AtomicU64::new(0),
        }
    }

    /// `n` requests per minute per key (at least 1).
    pub fn per_minute(n: u32, max_keys: usize) -> KeyedLimit<K> {
        KeyedLimit::new(
            Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)),
            max_keys,
        )
    }

    /// `n` requests per second per key (at least 1).
    pub fn per_second(n: u32, max_keys: usize) -> KeyedLimit<K> {
        KeyedLimit::new(
            Quota::per_second(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)),
            max_keys,
        )
    }

    /// Whether `key` may make one more request now (and counts it).
    pub fn check(&self, key: &K) -> bool {
        if self.keyed.len() >= self.max_keys {
            // Full: prune, but at most once a second (pruning walks the whole map).
            let now = self.started.elapsed().as_millis() as u64;
            let last = self.last_prune_ms.load(Ordering::Relaxed);
            if (last == NEVER || now.saturating_sub(last) >= 1000)
                && self
                    .last_prune_ms
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                self.prune();
            }
            if self.keyed.len() >= self.max_keys {
                self.overflowed.fetch_add(1, Ordering::Relaxed);
                return self.overflow.check().is_ok();
            }
        }
        self.keyed.check_key(key).is_ok()
    }

    /// Forgets the keys whose allowance is full again, and gives the memory back.
    pub fn prune(&self) {
        self.keyed.retain_recent();
        self.keyed.shrink_to_fit();
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.keyed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keyed.is_empty()
    }

    /// The most keys it remembers.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// Requests decided by the global fallback so far.
    pub fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_never_outgrows_its_bound() {
        let l: KeyedLimit<u32> = KeyedLimit::per_minute(3, 50);
        for k in 0..1000 {
            let _ = l.check(&k);
            assert!(l.len() <= 50, "{} keys", l.len());
        }
        assert!(l.overflowed() > 0);
        // While full, every key shares the fallback's allowance of 3 a minute.
        let allowed = (5000..5010).filter(|k| l.check(k)).count();
        assert_eq!(
            allowed, 0,
            "the fallback allowance was used up by the flood"
        );
    }

    #[test]
    fn each_key_has_its_own_allowance_below_the_bound() {
        let l: KeyedLimit<&str> = KeyedLimit::per_minute(2, 100);
        assert!(l.check(&"a") && l.check(&"a"));
        assert!(!l.check(&"a"));
        assert!(l.check(&"b"));
        assert_eq!(l.len(), 2);
        assert_eq!(l.overflowed(), 0);
    }
}
