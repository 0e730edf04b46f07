//! The HTTP server's bounds (`[http]`): connections, timeouts, parallel password hashes, and how
//! many clients each rate limiter remembers.

use std::time::Duration;

use super::Problems;

/// What the HTTP server and its limiters may spend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections served at once; at the cap the oldest idle one is closed for a new one, and
    /// when none is idle new ones wait in the kernel's queue.
    pub max_connections: usize,
    /// A request head (a new connection's first, or the next on a kept-alive one) must arrive
    /// whole within this; otherwise the connection is closed.
    pub header_read_timeout: Duration,
    /// A connection with no request in progress on which no byte moves for this long is closed.
    pub idle_timeout: Duration,
    /// The most time a request may take, body included; then 408 and the work is dropped.
    pub request_timeout: Duration,
    /// argon2 hashes (log-ins, first use of a token) running at once, each 19 MiB.
    pub parallel_hashes: usize,
    /// Clients (addresses, user names, tokens) each rate limiter remembers.
    pub max_tracked_clients: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(60),
            parallel_hashes: 2,
            max_tracked_clients: 10_000,
        }
    }
}

/// The keys as written.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct RawLimits {
    pub max_connections: Option<i64>,
    pub header_read_timeout_s: Option<i64>,
    pub idle_timeout_s: Option<i64>,
    pub request_timeout_s: Option<i64>,
    pub parallel_hashes: Option<i64>,
    pub max_tracked_clients: Option<i64>,
}

fn bounded(p: &mut Problems, key: &str, v: Option<i64>, default: u64, lo: i64, hi: i64) -> u64 {
    p.ranged(key, v, default as i64, lo, hi) as u64
}

pub(super) fn limits(p: &mut Problems, raw: RawLimits) -> HttpLimits {
    let d = HttpLimits::default();
    let secs = |p: &mut Problems, key: &str, v: Option<i64>, default: Duration, hi: i64| {
        Duration::from_secs(bounded(p, key, v, default.as_secs(), 1, hi))
    };
    HttpLimits {
        max_connections: bounded(
            p,
            "http.max_connections",
            raw.max_connections,
            d.max_connections as u64,
            8,
            100_000,
        ) as usize,
        header_read_timeout: secs(
            p,
            "http.header_read_timeout_s",
            raw.header_read_timeout_s,
            d.header_read_timeout,
            600,
        ),
        idle_timeout: secs(
            p,
            "http.idle_timeout_s",
            raw.idle_timeout_s,
            d.idle_timeout,
            3600,
        ),
        request_timeout: secs(
            p,
            "http.request_timeout_s",
            raw.request_timeout_s,
            d.request_timeout,
            3600,
        ),
        parallel_hashes: bounded(
            p,
            "http.parallel_hashes",
            raw.parallel_hashes,
            d.parallel_hashes as u64,
            1,
            64,
        ) as usize,
        max_tracked_clients: bounded(
            p,
            "http.max_tracked_clients",
            raw.max_tracked_clients,
            d.max_tracked_clients as u64,
            100,
            10_000_000,
        ) as usize,
    }
}
