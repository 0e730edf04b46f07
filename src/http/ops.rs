//! `/readyz` and `/metrics` (Prometheus text format).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;

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

/// Poll lag, tickets by SLA state, breaches, outbox depth by state, engine cycle time.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let m = &state.metrics;
    let now = (state.clock)();
    let mut out = String::new();
    let last = m.last_cycle_at.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP messo_poll_lag_seconds Seconds since the last engine pass."
    );
    let _ = writeln!(out, "# TYPE messo_poll_lag_seconds gauge");
    let _ = writeln!(
        out,
        "messo_poll_lag_seconds {}",
        if last == 0 { 0 } else { now.0 - last }
    );
    let _ = writeln!(
        out,
        "# HELP messo_engine_cycle_milliseconds Duration of the last engine pass."
    );
    let _ = writeln!(out, "# TYPE messo_engine_cycle_milliseconds gauge");
    let _ = writeln!(
        out,
        "messo_engine_cycle_milliseconds {}",
        m.last_cycle_ms.load(Ordering::Relaxed)
    );
    let _ = writeln!(out, "# TYPE messo_engine_cycles_total counter");
    let _ = writeln!(
        out,
        "messo_engine_cycles_total {}",
        m.cycles.load(Ordering::Relaxed)
    );
    let _ = writeln!(out, "# TYPE messo_notices_owed_total counter");
    let _ = writeln!(
        out,
        "messo_notices_owed_total {}",
        m.owed_total.load(Ordering::Relaxed)
    );
    let _ = writeln!(out, "# TYPE messo_notices_delivered_total counter");
    let _ = writeln!(
        out,
        "messo_notices_delivered_total {}",
        m.delivered_total.load(Ordering::Relaxed)
    );
    for (name, v) in [
        ("messo_notices_failed_total", &m.failed_total),
        ("messo_notices_dead_total", &m.dead_total),
        ("messo_notices_uncertain_total", &m.uncertain_total),
        ("messo_resent_total", &m.resent_total),
        ("messo_fallback_total", &m.fallback_total),
        ("messo_attempts_total", &m.attempts_total),
        ("messo_inbound_total", &m.inbound_total),
        (
            "messo_inbound_integrations_total",
            &m.inbound_integrations_total,
        ),
        ("messo_inbound_unmatched_total", &m.inbound_unmatched_total),
        ("messo_inbound_opt_outs_total", &m.inbound_opt_outs_total),
        ("messo_inbound_receipts_total", &m.inbound_receipts_total),
        ("messo_portal_views_total", &m.portal_views_total),
        ("messo_portal_refused_total", &m.portal_refused_total),
        (
            "messo_portal_enumeration_alarms_total",
            &m.portal_enumeration_alarms_total,
        ),
    ] {
        let _ = writeln!(out, "# TYPE {name} counter");
        let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
    }
    let _ = writeln!(
        out,
        "# HELP messo_argon2_runs_total Password and token hashes computed for requests."
    );
    let _ = writeln!(out, "# TYPE messo_argon2_runs_total counter");
    let _ = writeln!(out, "messo_argon2_runs_total {}", super::hash_runs());
    let c = super::server::counters();
    let _ = writeln!(out, "# TYPE messo_http_connections gauge");
    let _ = writeln!(out, "messo_http_connections {}", c.open);
    for (name, v) in [
        ("messo_http_connections_total", c.accepted),
        ("messo_http_connections_evicted_total", c.evicted),
        ("messo_http_connections_timed_out_total", c.timed_out),
    ] {
        let _ = writeln!(out, "# TYPE {name} counter");
        let _ = writeln!(out, "{name} {v}");
    }
    let _ = writeln!(out, "# TYPE messo_crm_inbox_rows_total counter");
    let _ = writeln!(
        out,
        "messo_crm_inbox_rows_total {}",
        m.inbox_rows_total.load(Ordering::Relaxed)
    );
    match state.store.tickets_by_state().await {
        Ok(rows) => {
            let _ = writeln!(out, "# HELP messo_tickets Open tickets by SLA state.");
            let _ = writeln!(out, "# TYPE messo_tickets gauge");
            for (s, n) in rows {
                let _ = writeln!(out, "messo_tickets{{state=\"{s}\"}} {n}");
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: tickets by state"),
    }
    match state.store.outbox_depth().await {
        Ok(rows) => {
            let _ = writeln!(out, "# HELP messo_outbox Outbox rows by state.");
            let _ = writeln!(out, "# TYPE messo_outbox gauge");
            for (s, n) in rows {
                let _ = writeln!(out, "messo_outbox{{state=\"{s}\"}} {n}");
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: outbox depth"),
    }
    match state.store.breaches().await {
        Ok(n) => {
            let _ = writeln!(
                out,
                "# HELP messo_breaches_total Breach notices owed so far."
            );
            let _ = writeln!(out, "# TYPE messo_breaches_total counter");
            let _ = writeln!(out, "messo_breaches_total {n}");
        }
        Err(e) => tracing::warn!(error = %e, "metrics: breaches"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
