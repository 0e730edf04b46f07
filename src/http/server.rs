//! The HTTP server: our own accept loop over hyper's HTTP/1 connections, with bounds.
//!
//! - **Header-read timeout** (`http.header_read_timeout_s`): a request head must arrive whole
//!   within it, counted from when the server starts waiting for it (a new connection, or the next
//!   request on a kept-alive one); otherwise hyper ends the connection. A client that sends its
//!   head a byte at a time, or nothing at all, holds a connection for that long at most.
//! - **Idle timeout** (`http.idle_timeout_s`): a connection with no request being handled on which
//!   no byte moves either way (a response its client does not read) is closed.
//! - **Request timeout** (`http.request_timeout_s`): a request, body included, that takes longer
//!   is answered 408 and its work dropped (a slow body, a stuck store).
//! - **Connection cap** (`http.max_connections`): at the cap, a new connection takes the place of
//!   the oldest one that has no request in progress (an idle keep-alive or a head still coming);
//!   when every connection is working, new ones wait in the kernel's accept queue until one ends.
//!   So a flood of slow or silent connections never locks out a real request such as `/healthz`.
//! - **Graceful stop**: when `shutdown` turns true the listener closes, idle connections close at
//!   once, and requests in progress finish (each within the request timeout).

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath};
use axum::http::StatusCode;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::HttpService;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt;
use tower_http::trace::TraceLayer;

use crate::config::HttpLimits;

static OPEN: AtomicU64 = AtomicU64::new(0);
static ACCEPTED: AtomicU64 = AtomicU64::new(0);
static EVICTED: AtomicU64 = AtomicU64::new(0);
static TIMED_OUT: AtomicU64 = AtomicU64::new(0);

/// Connection counters of this process, for `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct Counters {
    /// Connections open now.
    pub open: u64,
    pub accepted: u64,
    /// Idle connections closed to make room for a new one at the cap.
    pub evicted: u64,
    /// Connections closed because a head did not arrive in time or nothing moved.
    pub timed_out: u64,
}

pub fn counters() -> Counters {
    Counters {
        open: OPEN.load(Ordering::Relaxed),
        accepted: ACCEPTED.load(Ordering::Relaxed),
        evicted: EVICTED.load(Ordering::Relaxed),
        timed_out: TIMED_OUT.load(Ordering::Relaxed),
    }
}

/// Milliseconds since the first call in this process: the clock of connection activity.
fn now_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// What the accept loop knows of one connection.
struct Slot {
    in_flight: Arc<AtomicUsize>,
    close: Arc<Notify>,
}

/// The open connections, oldest first.
#[derive(Default)]
struct Registry {
    slots: Mutex<BTreeMap<u64, Slot>>,
}

impl Registry {
    fn add(&self, id: u64, slot: Slot) {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, slot);
    }

    fn remove(&self, id: u64) {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    /// Tells the oldest connection with no request in progress to close; false if none.
    fn evict_oldest_idle(&self) -> bool {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let victim = slots
            .iter()
            .find(|(_, s)| s.in_flight.load(Ordering::Acquire) == 0)
            .map(|(id, _)| *id);
        match victim.and_then(|id| slots.remove(&id)) {
            Some(slot) => {
                slot.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Removes a connection from the registry when its task ends, however it ends.
struct Leave {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Leave {
    fn drop(&mut self) {
        self.registry.remove(self.id);
        OPEN.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a request in progress until its response is ready.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(n: &Arc<AtomicUsize>) -> InFlight {
        n.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(n))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A socket that notes when a byte last moved.
struct Tracked {
    inner: TcpStream,
    last: Arc<AtomicU64>,
}

impl Tracked {
    fn touch(&self) {
        self.last.store(now_ms(), Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Resolves when the connection has had no request in progress and no byte moving for `idle`.
async fn idle_for(last: &AtomicU64, in_flight: &AtomicUsize, idle: Duration) {
    let idle_ms = idle.as_millis() as u64;
    loop {
        let since = now_ms().saturating_sub(last.load(Ordering::Relaxed));
        if since >= idle_ms && in_flight.load(Ordering::Acquire) == 0 {
            return;
        }
        let wait = idle_ms.saturating_sub(since).max(100);
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}

/// Answers 408 (and closes the connection) when a request, body included, takes longer than
/// `limit`; its work is dropped.
async fn time_limit(
    axum::extract::State(limit): axum::extract::State<Duration>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            let mut res = axum::response::IntoResponse::into_response(super::Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "Request took too long",
                format!(
                    "the request, body included, must complete within {} s",
                    limit.as_secs()
                ),
            ));
            res.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
            res
        }
    }
}

/// One span per request (tower-http's trace layer): the method, the matched route (its pattern,
/// never the path as sent, which may carry a token; `(unmatched)` for the fallback), then the
/// status and the latency; no query string, header or body. The answer is a debug event in it.
pub fn traced(app: Router) -> Router {
    app.layer(
        TraceLayer::new_for_http()
            .make_span_with(|req: &axum::extract::Request| {
                let route = req
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("(unmatched)", MatchedPath::as_str);
                tracing::info_span!(
                    "request",
                    method = %req.method(),
                    route,
                    status = tracing::field::Empty,
                    latency_ms = tracing::field::Empty,
                )
            })
            .on_request(())
            .on_response(
                |res: &axum::response::Response, latency: Duration, span: &tracing::Span| {
                    span.record("status", res.status().as_u16());
                    span.record("latency_ms", latency.as_micros() as f64 / 1000.0);
                    tracing::debug!("answered");
                },
            )
            .on_body_chunk(())
            .on_eos(())
            // The status is in the span; a handler logs its own failures.
            .on_failure(()),
    )
}

/// Serves `app` on `listener` within `limits` until `shutdown` turns true, then waits for the
/// connections to finish. Handlers see the client's address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &HttpLimits,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let app = traced(app.layer(axum::middleware::from_fn_with_state(
        limits.request_timeout,
        time_limit,
    )));
    let max = limits.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max));
    let shared = Shared {
        app,
        builder: Arc::new(connection_builder(limits)),
        registry: Arc::new(Registry::default()),
        idle: limits.idle_timeout,
    };
    let mut next_id: u64 = 0;
    loop {
        let Some((stream, peer)) = next_connection(&listener, &mut shutdown).await else {
            break;
        };
        let Some(permit) = make_room(&permits, &shared.registry, max, &mut shutdown).await else {
            break;
        };
        next_id += 1;
        spawn_connection(&shared, next_id, stream, peer, permit, shutdown.clone());
    }
    drop(listener);
    // Every connection gives its permit back when it ends.
    let _ = permits.acquire_many(max as u32).await;
    Ok(())
}

/// What every connection's task is given.
struct Shared {
    app: Router,
    builder: Arc<http1::Builder>,
    registry: Arc<Registry>,
    idle: Duration,
}

/// HTTP/1 with keep-alive, a request head due within the header-read timeout.
fn connection_builder(limits: &HttpLimits) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder
}

/// The next connection accepted; `None` once `shutdown` turns true. A failed accept (out of
/// file descriptors, a connection reset while queued) is logged and the loop keeps serving.
async fn next_connection(
    listener: &TcpListener,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|stop| *stop) => return None,
        };
        match accepted {
            Ok(x) => return Some(x),
            Err(e) => {
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A place for one more connection. At the cap, the oldest connection with no request in
/// progress is told to close and its place is awaited; when every connection is working, the
/// wait lasts until one ends. `None` once `shutdown` turns true.
async fn make_room(
    permits: &Arc<Semaphore>,
    registry: &Registry,
    max: usize,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<OwnedSemaphorePermit> {
    if let Ok(p) = Arc::clone(permits).try_acquire_owned() {
        return Some(p);
    }
    if !registry.evict_oldest_idle() {
        tracing::warn!(
            max_connections = max,
            "every connection is busy; new ones wait"
        );
    }
    tokio::select! {
        p = Arc::clone(permits).acquire_owned() => p.ok(),
        _ = shutdown.wait_for(|stop| *stop) => None,
    }
}

/// Registers connection `id` and serves it on its own task, which holds `permit` (and the
/// registry entry) until the connection ends.
fn spawn_connection(
    shared: &Shared,
    id: u64,
    stream: TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
    stop: watch::Receiver<bool>,
) {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let close = Arc::new(Notify::new());
    shared.registry.add(
        id,
        Slot {
            in_flight: Arc::clone(&in_flight),
            close: Arc::clone(&close),
        },
    );
    OPEN.fetch_add(1, Ordering::Relaxed);
    ACCEPTED.fetch_add(1, Ordering::Relaxed);
    let leave = Leave {
        registry: Arc::clone(&shared.registry),
        id,
    };
    let last = Arc::new(AtomicU64::new(now_ms()));
    let io = TokioIo::new(Tracked {
        inner: stream,
        last: Arc::clone(&last),
    });
    let app = shared.app.clone();
    let counted = Arc::clone(&in_flight);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
        let guard = InFlight::new(&counted);
        let call = app.clone().oneshot(req);
        async move {
            let res = call.await;
            drop(guard);
            res
        }
    });
    let builder = Arc::clone(&shared.builder);
    let watched = Watched {
        close,
        last,
        in_flight,
        idle: shared.idle,
        stop,
    };
    tokio::spawn(async move {
        let _permit = permit;
        let _leave = leave;
        drive(builder.serve_connection(io, service), watched).await;
    });
}

/// What ends a connection besides the connection itself.
struct Watched {
    /// Notified when the connection is evicted to make room.
    close: Arc<Notify>,
    /// When a byte last moved.
    last: Arc<AtomicU64>,
    in_flight: Arc<AtomicUsize>,
    idle: Duration,
    stop: watch::Receiver<bool>,
}

/// Drives one connection until it ends, is evicted, or idles out, counting why; once `stop`
/// turns true it finishes the request in progress and closes.
async fn drive<S, B>(conn: http1::Connection<TokioIo<Tracked>, S>, mut w: Watched)
where
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    if e.is_timeout() {
                        TIMED_OUT.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::debug!(error = %e, "connection ended");
                }
                break;
            }
            _ = w.close.notified() => {
                EVICTED.fetch_add(1, Ordering::Relaxed);
                break;
            }
            _ = idle_for(&w.last, &w.in_flight, w.idle) => {
                TIMED_OUT.fetch_add(1, Ordering::Relaxed);
                break;
            }
            _ = w.stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
