//! Messo's pure core: the business calendar, the SLA clock, a ticket's history and what it is
//! owed, and the typed values every edge speaks in.
//!
//! Nothing here does I/O or reads the clock on its own: `now` is always an argument. The crate
//! depends on no database, HTTP, SMTP or async runtime crate, so the compiler keeps it pure;
//! the `messo` crate (store, channels, webhooks, HTTP, daemon) depends on it, never the reverse.

pub mod calendar;
pub mod delivery;
pub mod domain;
pub mod engine;
pub mod ics;
pub mod inbound;
pub mod locale;
pub mod phone;
pub mod redact;
pub mod reports;
pub mod schedule;
pub mod sla;
pub mod sms;
pub mod ticket;
pub mod time;
pub mod versions;
