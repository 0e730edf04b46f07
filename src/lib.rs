//! Messo keeps an Italian public administration's citizen help desk (URP) to its service
//! agreement: the business calendar, the SLA clock, and the notices owed to citizens.
//!
//! The pure core is its own crate, `messo-core` (re-exported here under the same names:
//! `time`, `domain`, `calendar`, `sla`, `ticket`, `engine`, `locale`, `versions`, `sms`,
//! `redact`, `reports`): it never does I/O and never reads the clock. This crate holds the edges around
//! it, in one direction (see ARCHITECTURE.md and tests/architecture.rs).

pub use messo_core::{
    calendar, domain, engine, ics, locale, phone, redact, reports, sla, sms, ticket, time, versions,
};

pub mod batch;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod doctor;
pub mod http;
pub mod inbound;
pub mod metrics;
pub mod monitoring;
pub mod monthly;
pub mod portal;
pub mod private_files;
pub mod seed;
pub mod store;
pub mod templates;

/// Makes ring the process's TLS provider (rustls refuses to pick one when several could be
/// compiled in). Called before any TLS client is built; calling it again is harmless.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
