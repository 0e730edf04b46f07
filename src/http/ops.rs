//! `/readyz` and `/metrics` (Prometheus text format).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::metrics::{CONTENT_TYPE, Scrape};

/// Ready when every table of the store answers a one-row read (a missing or damaged table is
/// named in the answer; the database's own words go to the log only).
pub async fn ready(State(state): State<AppState>) -> Response {
    match state.store.check_tables().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err((table, e)) => {
            tracing::warn!(table, error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("database unavailable: table {table} cannot be read"),
            )
                .into_response()
        }
    }
}

/// Every metric of the process (`crate::metrics`), with the figures read now: poll lag,
/// tickets by SLA state, outbox depth by state, breaches, connections, argon2 runs.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let c = super::server::counters();
    let mut scrape = Scrape {
        now: (state.clock)().0,
        argon2_runs: super::hash_runs(),
        connections_open: c.open,
        connections_accepted: c.accepted,
        connections_evicted: c.evicted,
        connections_timed_out: c.timed_out,
        ..Scrape::default()
    };
    match state.store.tickets_by_state().await {
        Ok(rows) => scrape.tickets = Some(rows),
        Err(e) => tracing::warn!(error = %e, "metrics: tickets by state"),
    }
    match state.store.outbox_depth().await {
        Ok(rows) => scrape.outbox = Some(rows),
        Err(e) => tracing::warn!(error = %e, "metrics: outbox depth"),
    }
    match state.store.breaches().await {
        Ok(n) => scrape.breaches = Some(n),
        Err(e) => tracing::warn!(error = %e, "metrics: breaches"),
    }
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.metrics.render(&scrape),
    )
        .into_response()
}
