//! `/healthz`, `/readyz` and `/metrics` (Prometheus text format).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::metrics::{CONTENT_TYPE, Scrape};

/// Liveness
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "ops",
    responses(
        (status = 200, description = "The process answers.",
         body = String, content_type = "text/plain", example = "ok"),
    ),
)]
pub async fn healthz() -> &'static str {
    "ok"
}

// Ready when every table of the store answers a one-row read (a missing or damaged table is
// named in the answer; the database's own words go to the log only).
/// Readiness
///
/// Ready when the database answers.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "ops",
    responses(
        (status = 200, description = "Ready.", body = String, content_type = "text/plain",
         example = "ready"),
        (status = 503, description = "The database does not answer.", body = String,
         content_type = "text/plain", example = "database unavailable: table tickets cannot be read"),
    ),
)]
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

// Every metric of the process (`crate::metrics`), with the figures read now.
/// Prometheus metrics
///
/// Every metric of the process: poll lag, engine pass, message send and webhook latency
/// histograms, notice and inbound counters, open tickets by SLA state, outbox depth by state,
/// breaches, connections, argon2 runs.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "ops",
    responses(
        (status = 200, description = "Prometheus text format.",
         body = String, content_type = CONTENT_TYPE),
    ),
)]
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
    match state.store.monitor().tickets_by_state().await {
        Ok(rows) => scrape.tickets = Some(rows),
        Err(e) => tracing::warn!(error = %e, "metrics: tickets by state"),
    }
    match state.store.monitor().outbox_depth().await {
        Ok(rows) => scrape.outbox = Some(rows),
        Err(e) => tracing::warn!(error = %e, "metrics: outbox depth"),
    }
    match state.store.monitor().breaches().await {
        Ok(n) => scrape.breaches = Some(n),
        Err(e) => tracing::warn!(error = %e, "metrics: breaches"),
    }
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.metrics.render(&scrape),
    )
        .into_response()
}
