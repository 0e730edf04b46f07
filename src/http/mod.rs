//! The HTTP edge (axum): the ticket ingest API under `/api/v1`, and health checks.
//!
//! Every error is an RFC 7807 `application/problem+json` body that names the field at fault.
//! Bearer tokens come from configuration as argon2 hashes; a verified token is remembered by
//! its SHA-256 so only the first request pays for argon2.

pub mod admin;
mod auth;
mod ops;
pub mod portal;
mod problem;
mod tickets;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

pub use auth::{TokenBook, new_token};
pub use problem::Problem;

use crate::store::Store;
use crate::time::Timestamp;

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Where the API reads the time: the system clock in the daemon, a fixed or stepped one in tests.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| Timestamp::from_chrono(&chrono::Utc::now()))
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub tokens: Arc<TokenBook>,
    pub clock: Clock,
    /// Woken after every accepted write, so the engine decides at once.
    pub wake: Arc<tokio::sync::Notify>,
    pub metrics: Arc<crate::daemon::Metrics>,
}

/// The OpenAPI document of the whole HTTP API.
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut res = OPENAPI.into_response();
    res.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    res
}

/// The router of the whole HTTP API.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/tickets", post(tickets::create).get(tickets::list))
        .route("/tickets/{number}", get(tickets::get_one))
        .route("/tickets/{number}/events", post(tickets::append));
    Router::new()
        .nest("/api/v1", api)
        .route("/api/v1/openapi.json", get(openapi))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .fallback(|| async { Problem::not_found("no such resource") })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
