//! The HTTP edge (axum): the ticket ingest API under `/api/v1`, and health checks.
//!
//! Every error is an RFC 7807 `application/problem+json` body that names the field at fault.
//! Bearer tokens `messo_<id>_<secret>` come from configuration as argon2 hashes: an unknown id
//! is refused without hashing, a verified token is remembered by its SHA-256 so only the first
//! request pays for argon2, and argon2 runs on the blocking pool with bounded parallelism
//! (`auth`). The server itself (`server`) bounds connections and the time of heads and requests;
//! every rate limiter's memory is bounded (`limit`).
//!
//! Every route is registered through utoipa-axum's `routes!` from a handler that carries its
//! `#[utoipa::path]`: [`app`] serves the OpenAPI document of exactly the routes it built
//! (`openapi`; the shapes of JSON owned by other layers are described in `schema`).

pub mod admin;
mod auth;
pub mod desk;
pub mod health;
pub mod limit;
pub mod openapi;
mod ops;
pub mod portal;
mod problem;
pub mod reports;
mod schema;
pub mod server;
mod tickets;
pub mod voice;
pub mod webhooks;

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::{
    DEFAULT_PARALLEL_HASHES, HashError, NewToken, SecretError, TokenBook, hash_runs, new_token,
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
use crate::time::Clock;

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

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

/// The ticket API and the operations routes, with their documentation.
pub fn routes(state: AppState) -> OpenApiRouter {
    // The checks that query the store are limited per client before they run; /healthz is not.
    let ops_limit = Arc::new(limit::KeyedLimit::per_minute(
        OPS_PER_MINUTE,
        limit::DEFAULT_MAX_KEYS,
    ));
    let ops = OpenApiRouter::new()
        .routes(routes!(ops::ready))
        .routes(routes!(ops::metrics))
        .route_layer(axum::middleware::from_fn_with_state(ops_limit, limit_ops));
    OpenApiRouter::new()
        .routes(routes!(tickets::create, tickets::list))
        .routes(routes!(tickets::get_one))
        .routes(routes!(tickets::append))
        .routes(routes!(ops::healthz))
        .merge(ops)
        .fallback(|| async { Problem::not_found("no such resource") })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The ticket API and the operations routes (without the OpenAPI document: see [`app`]).
pub fn router(state: AppState) -> Router {
    routes(state).split_for_parts().0
}

/// The whole HTTP API: the ticket API, the operations routes, the webhooks, the admin API and
/// console, the portal when it is configured, and at `/api/v1/openapi.json` the document of
/// exactly these routes. Also returns that document.
pub fn app(
    state: AppState,
    webhooks: webhooks::WebhookState,
    admin: admin::AdminState,
    portal: Option<portal::PortalState>,
    reports: reports::ReportsState,
) -> (Router, utoipa::openapi::OpenApi) {
    let served = openapi::Served::default();
    let mut all = routes(state)
        .merge(
            OpenApiRouter::new()
                .routes(routes!(openapi::serve))
                .with_state(Arc::clone(&served)),
        )
        .merge(webhooks::routes(webhooks))
        .merge(admin::routes(admin))
        .merge(desk::routes(reports.desk()))
        .merge(reports::routes(reports));
    if let Some(p) = portal {
        all = all.merge(portal::routes(p));
    }
    let (router, paths) = all.split_for_parts();
    let doc = openapi::document(paths);
    // Serializing the derived document cannot fail: it holds strings, numbers and maps only.
    let _ = served.set(doc.to_json().unwrap_or_default());
    (router, doc)
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
    use axum::routing::get;

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
