//! `messo run`: the long-running process. Today it applies migrations, records the
//! configuration's calendar and policy versions, serves the HTTP API, and polls the store for
//! direct writes and for tickets whose next SLA instant has come. Shutdown on SIGTERM or SIGINT
//! stops taking requests, lets the ones in flight finish, and returns.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::Config;
use crate::http::{self, AppState, Clock, TokenBook};
use crate::store::{Store, StoreError};

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP server: {0}")]
    Serve(std::io::Error),
}

/// Rows and tickets handled per poll pass.
const BATCH: i64 = 500;

/// One poll pass: direct writes first, then SLA instants that came due.
pub async fn poll_once(store: &Store, clock: &Clock) -> Result<(u64, u64), StoreError> {
    let mut taken = 0;
    loop {
        let r = store.process_inbox(clock(), BATCH).await?;
        let n = r.accepted + r.unchanged + r.rejected;
        taken += n;
        if n < BATCH as u64 {
            break;
        }
    }
    let mut refreshed = 0;
    loop {
        let n = store.refresh_due(clock(), BATCH).await?;
        refreshed += n;
        if n < BATCH as u64 {
            break;
        }
    }
    Ok((taken, refreshed))
}

/// Runs until `shutdown` turns true.
pub async fn run(
    config: Config,
    clock: Clock,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), DaemonError> {
    let store = Store::connect(&config.database_url).await?;
    store.migrate().await?;
    let (cal_v, pol_v) = store.register_config(&config, clock()).await?;
    tracing::info!(
        backend = ?store.backend(),
        calendar_version = cal_v,
        policy_version = pol_v,
        "store ready"
    );
    if config.http.tokens.is_empty() {
        tracing::warn!(
            "no API tokens configured: the ticket API refuses every request (see `messo token new`)"
        );
    }
    let state = AppState {
        store: store.clone(),
        tokens: Arc::new(TokenBook::new(config.http.tokens.clone())),
        clock: clock.clone(),
    };
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|source| DaemonError::Listen {
            addr: config.http.listen,
            source,
        })?;
    tracing::info!(addr = %config.http.listen, "HTTP API listening");

    let mut server_stop = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, http::router(state))
            .with_graceful_shutdown(async move {
                let _ = server_stop.wait_for(|stop| *stop).await;
            })
            .await
    });

    let interval = Duration::from_millis(config.poll_interval_ms);
    loop {
        match poll_once(&store, &clock).await {
            Ok((taken, refreshed)) if taken + refreshed > 0 => {
                tracing::info!(inbox_rows = taken, sla_refreshed = refreshed, "poll");
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "poll failed; retrying at the next tick"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    tracing::info!("stopping: finishing requests in flight");
    match tokio::time::timeout(Duration::from_secs(20), server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(DaemonError::Serve(e)),
        Ok(Err(join)) => tracing::error!(error = %join, "HTTP server task failed"),
        Err(_) => tracing::warn!("requests still in flight after 20 s; leaving them"),
    }
    tracing::info!("stopped");
    Ok(())
}
