//! The HTTP edge (axum): the ticket ingest API under `/api/v1`, and health checks.
//!
//! Every error is an RFC 7807 `application/problem+json` body that names the field at fault.
//! Bearer tokens `messo_<id>_<secret>` come from configuration as argon2 hashes: an unknown id
//! is refused without hashing, a verified token is remembered by its SHA-256 so only the first
//! request pays for argon2, and argon2 runs on the blocking pool with bounded parallelism
//! (`auth`). The server itself (`server`) bounds connections and the time of heads and requests;
//! every rate limiter's memory is bounded (`limit`).

pub mod admin;
mod auth;
pub mod limit;
mod ops;
pub mod portal;
mod problem;
pub mod server;
mod tickets;
pub mod webhooks;

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::routing::{get, post};

pub use auth::{
    DEFAULT_PARALLEL_HASHES, HashError, NewToken, TokenBook, hash_runs, new_token,
    set_parallel_hashes, split_token, valid_token_id,
};
pub use problem::Problem;

/// The client's address: the TCP peer the server recorded, or 0.0.0.0 when it recorded none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub IpAddr);

impl Peer {
    /// The peer of a request's extensions.
    pub fn of(extensions: &axum::http::Extensions) -> IpAddr {
        extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Peer, Infallible> {
        Ok(Peer(Peer::of(&parts.extensions)))
    }
}

use crate::store::Store;

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub use crate::time::{Clock, system_clock};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub tokens: Arc<TokenBook>,
    pub clock: Clock,
    /// Woken after every accepted write, so the engine decides at once.
    pub wake: Arc<tokio::sync::Notify>,
    pub metrics: Arc<crate::metrics::Metrics>,
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

/// Requests per minute one client may make to `/readyz` and `/metrics` (they query the store).
const OPS_PER_MINUTE: u32 = 120;

async fn limit_ops(
    axum::extract::State(limit): axum::extract::State<Arc<limit::KeyedLimit<IpAddr>>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if limit.check(&Peer::of(req.extensions())) {
        next.run(req).await
    } else {
        auth::problem_response(Problem::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
            format!("at most {OPS_PER_MINUTE} a minute from one client"),
        ))
    }
}

/// The router of the whole HTTP API.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/tickets", post(tickets::create).get(tickets::list))
        .route("/tickets/{number}", get(tickets::get_one))
        .route("/tickets/{number}/events", post(tickets::append));
    // The checks that query the store are limited per client before they run; /healthz is not.
    let ops_limit = Arc::new(limit::KeyedLimit::per_minute(
        OPS_PER_MINUTE,
        limit::DEFAULT_MAX_KEYS,
    ));
    let ops = Router::new()
        .route("/readyz", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route_layer(axum::middleware::from_fn_with_state(ops_limit, limit_ops));
    Router::new()
        .nest("/api/v1", api)
        .route("/api/v1/openapi.json", get(openapi))
        .route("/healthz", get(|| async { "ok" }))
        .merge(ops)
        .fallback(|| async { Problem::not_found("no such resource") })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Turns a panic in a handler into a 500 problem for that request (the connection and the
/// daemon go on); the panic is logged as an error.
pub fn catch_panics(app: Router) -> Router {
    app.layer(tower_http::catch_panic::CatchPanicLayer::custom(
        |p: Box<dyn std::any::Any + Send + 'static>| {
            use axum::response::IntoResponse;
            tracing::error!(panic = %panic_message(p.as_ref()), "a request handler panicked");
            Problem::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "the request could not be completed; it was logged",
            )
            .into_response()
        },
    ))
}

/// The text of a caught panic (its message, cut short).
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    let text = p
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned());
    text.chars().take(300).collect()
}

#[cfg(test)]
mod panic_tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_is_a_500_and_the_server_goes_on() {
        let app = catch_panics(
            Router::new()
                .route(
                    "/boom",
                    get(|| async {
                        panic!("boom");
                        #[allow(unreachable_code)]
                        "never"
                    }),
                )
                .route("/ok", get(|| async { "ok" })),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        crate::install_crypto();
        let client = reqwest::Client::new();
        for _ in 0..3 {
            let r = client
                .get(format!("http://{addr}/boom"))
                .send()
                .await
                .expect("an answer, not a reset");
            assert_eq!(r.status(), 500);
            let body: serde_json::Value = r.json().await.expect("problem json");
            assert_eq!(body["type"], "urn:messo:problem:internal");
        }
        let r = client
            .get(format!("http://{addr}/ok"))
            .send()
            .await
            .expect("ok");
        assert_eq!(r.status(), 200);
    }
}
