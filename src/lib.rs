//! Messo keeps an Italian public administration's citizen help desk (URP) to its service
//! agreement: the business calendar, the SLA clock, and the notices owed to citizens.
//!
//! The pure core (`time`, `calendar`, `sla`, `domain`) never does I/O and never reads the clock;
//! `config` and `batch` are the edges used by the `messo` binary.

pub mod batch;
pub mod calendar;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod domain;
pub mod engine;
pub mod http;
pub mod inbound;
pub mod locale;
pub mod metrics;
pub mod notify;
pub mod portal;
pub mod private_files;
pub mod seed;
pub mod sla;
pub mod store;
pub mod templates;
pub mod ticket;
pub mod time;
pub mod versions;

/// Makes ring the process's TLS provider (rustls refuses to pick one when several could be
/// compiled in). Called before any TLS client is built; calling it again is harmless.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
