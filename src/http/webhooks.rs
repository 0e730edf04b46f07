//! `POST /webhooks/{sms|voice|dlr|mail}/{provider}[/{token}]`: the HTTP edge of the inbound
//! pipeline — **verify → parse → deduplicate → act → answer**.
//!
//! Verification comes first and reads only what it needs; a refused request leaves no trace in
//! the store. A verified one is stored (several per commit) before it is answered, and acted on
//! by the daemon's next pass. The same provider id twice is answered 200 with no second effect.
//!
//! Answers: 200 accepted or duplicate; 400 a body that cannot be read, with the reason; 401 no
//! credentials; 403 wrong credentials or a stale timestamp; 404 unknown route or provider; 413
//! a body over the limit; 429 over the per-client rate; 503 the store is unavailable (providers
//! retry).
//!
//! The rate limit is checked first, before the body is read or anything verified; each
//! endpoint's limiter remembers at most `http.max_tracked_clients` addresses (see `limit`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::limit::{DEFAULT_MAX_KEYS, KeyedLimit};
use super::openapi::{
    WebhookForbidden, WebhookMalformed, WebhookNotFound, WebhookTooLarge, WebhookTooManyRequests,
    WebhookUnauthenticated, WebhookUnavailable,
};
use super::problem::Problem;
use super::voice::{self, Answering};
use crate::config::{Endpoint, Family, Inbound};
use crate::inbound::parse::Fields;
use crate::inbound::{self, Parsed, Rejection, Request as InRequest, Route};
use crate::metrics::Metrics;
use crate::phone::vonage::Callback;
use crate::redact::mask;
use crate::store::{Accepted, InboundWriter, NewInbound};
use crate::time::{Clock, Timestamp};

/// Request bodies of the SMS, voice and receipt webhooks are refused above this.
pub const MAX_WEBHOOK_BYTES: usize = 64 * 1024;

/// What the webhook handlers share.
#[derive(Clone)]
pub struct WebhookState {
    inner: Arc<Inner>,
    /// Where each request's handling time goes (a fresh set unless [`WebhookState::with_metrics`]).
    metrics: Arc<Metrics>,
    /// The telephone answering backup, when `[voice] enabled`: it answers the voice webhooks
    /// of the families it speaks (otherwise a call is recorded and answered empty).
    answering: Option<Answering>,
}

struct Inner {
    endpoints: HashMap<String, Endpoint>,
    limiters: HashMap<String, KeyedLimit<IpAddr>>,
    public_base_url: String,
    tolerance_s: i64,
    max_mail_bytes: usize,
    attachments_dir: PathBuf,
    max_attachment_bytes: u64,
    /// Relays whose `Authentication-Results` are believed (`inbound.trusted_authserv_ids`).
    trusted_authserv_ids: Vec<String>,
    writer: InboundWriter,
    clock: Clock,
}

impl WebhookState {
    /// From the `[inbound]` configuration and `http.public_base_url`.
    pub fn new(
        inbound: &Inbound,
        public_base_url: &str,
        writer: InboundWriter,
        clock: Clock,
    ) -> WebhookState {
        WebhookState::with_max_clients(inbound, public_base_url, writer, clock, DEFAULT_MAX_KEYS)
    }

    /// Like [`WebhookState::new`], each endpoint's limiter remembering at most `max_clients`
    /// addresses (`http.max_tracked_clients`).
    pub fn with_max_clients(
        inbound: &Inbound,
        public_base_url: &str,
        writer: InboundWriter,
        clock: Clock,
        max_clients: usize,
    ) -> WebhookState {
        let mut endpoints = HashMap::new();
        let mut limiters = HashMap::new();
        for e in &inbound.endpoints {
            limiters.insert(
                e.name.clone(),
                KeyedLimit::per_second(e.rate_per_s, max_clients),
            );
            endpoints.insert(e.name.clone(), e.clone());
        }
        WebhookState {
            inner: Arc::new(Inner {
                endpoints,
                limiters,
                public_base_url: public_base_url.to_owned(),
                tolerance_s: inbound.signature_tolerance_s,
                max_mail_bytes: inbound.max_mail_bytes,
                attachments_dir: inbound.attachments_dir.clone(),
                max_attachment_bytes: inbound.max_attachment_bytes,
                trusted_authserv_ids: inbound.trusted_authserv_ids.clone(),
                writer,
                clock,
            }),
            metrics: Arc::new(Metrics::default()),
            answering: None,
        }
    }

    /// Answers calls on the voice webhooks with the answering flow.
    pub fn with_answering(mut self, answering: Answering) -> WebhookState {
        self.answering = Some(answering);
        self
    }

    /// Records the handling time of every request in `metrics` (the daemon's).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> WebhookState {
        self.metrics = metrics;
        self
    }
}

impl WebhookState {
    /// Forgets the clients whose allowance is full again (the daemon calls it every minute).
    pub fn prune(&self) {
        for l in self.inner.limiters.values() {
            l.prune();
        }
    }

    /// Addresses remembered by the limiters, all endpoints together.
    pub fn tracked_clients(&self) -> usize {
        self.inner.limiters.values().map(KeyedLimit::len).sum()
    }
}

/// The webhook routes with their documentation (merged into the whole API by [`super::app`]).
pub fn routes(state: WebhookState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(without_token))
        .routes(routes!(with_token))
        .with_state(state)
}

/// The webhook routes.
pub fn router(state: WebhookState) -> Router {
    routes(state).split_for_parts().0
}

/// The route and the provider in a webhook's path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // described, never built
struct EndpointPath {
    /// Other values answer 404.
    #[param(inline)]
    route: RouteName,
    /// The name of an `[[inbound.endpoints]]` entry (a Twilio SMS provider of `[[sms.providers]]`
    /// gets one of the same name).
    provider: String,
}

// The routes of [`Route`].
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // described, never built
enum RouteName {
    Sms,
    Voice,
    Dlr,
    Mail,
}

/// The answer to a webhook that was stored, or was a repeat.
#[derive(Serialize, ToSchema)]
struct WebhookAccepted<'a> {
    #[schema(inline)]
    status: AcceptedStatus,
    /// The stored inbound record.
    id: i64,
    /// The provider's id of the event, which makes a repeat a duplicate.
    external_id: &'a str,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum AcceptedStatus {
    Accepted,
    Duplicate,
}

/// A signed provider webhook (twilio, vonage, generic)
///
/// The inbound pipeline: verify → parse → store (deduplicated) → answer; what the record causes
/// happens on the daemon's next pass. Verification comes first and a refused request leaves no
/// trace. The same provider id again is answered 200 with `duplicate` and changes nothing.
/// Bodies over 64 KiB are refused (the mail route: `inbound.max_mail_bytes`). See
/// docs/inbound.md for the fields read per family. Families whose requests are signed:
/// **twilio** (sms, voice, dlr; form-encoded only, `X-Twilio-Signature`; a status callback
/// carries our `order_id` in its query), **vonage** (voice only, with `[voice] enabled`; JSON;
/// `Authorization: Bearer` with Vonage's signed JWT over the body) and **generic** (every
/// route; `X-Messo-Timestamp` and `X-Messo-Signature`; JSON, a form, or multipart for mail).
#[utoipa::path(
    post,
    path = "/webhooks/{route}/{provider}",
    operation_id = "postWebhook",
    tag = "webhooks",
    security(("twilioSignature" = []), ("vonageJwt" = []), ("messoSignature" = [], "messoTimestamp" = [])),
    params(EndpointPath),
    request_body(
        content(
            (std::collections::HashMap<String, String> = "application/x-www-form-urlencoded"),
            (Object = "application/json"),
            (Object = "multipart/form-data"),
        ),
        description = "The provider's fields; on the mail route also file parts, kept as attachments.",
    ),
    responses(
        (status = 200,
         description = "Accepted or a duplicate. Twilio SMS and voice webhooks get an empty TwiML \
                        `<Response>` (with `[voice] enabled`, the call's TwiML); Vonage voice \
                        callbacks the call's NCCO (a JSON array of actions); the others JSON.",
         content(
             (WebhookAccepted = "application/json"),
             (String = "text/xml", example = json!(TWIML_EMPTY)),
         )),
        (status = 204, description = "A Vonage call event that needs no answer (the call goes on \
                                      with the NCCO it has)."),
        (status = 400, response = WebhookMalformed),
        (status = 401, response = WebhookUnauthenticated),
        (status = 403, response = WebhookForbidden),
        (status = 404, response = WebhookNotFound),
        (status = 413, response = WebhookTooLarge),
        (status = 429, response = WebhookTooManyRequests),
        (status = 503, response = WebhookUnavailable),
    ),
)]
async fn without_token(
    State(s): State<WebhookState>,
    Path((route, provider)): Path<(String, String)>,
    req: Request,
) -> Response {
    timed(s, route, provider, None, req).await
}

/// The route, the provider and the token in a webhook's path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // described, never built
struct TokenEndpointPath {
    /// Other values answer 404.
    #[param(inline)]
    route: RouteName,
    /// The name of an `[[inbound.endpoints]]` entry.
    provider: String,
    /// The endpoint's secret token, compared in constant time.
    token: String,
}

/// A provider webhook authenticated by a URL token (rest-it, mail)
///
/// The inbound pipeline: verify → parse → store (deduplicated) → answer; what the record causes
/// happens on the daemon's next pass. Verification comes first and a refused request leaves no
/// trace. The same provider id again is answered 200 with `duplicate` and changes nothing.
/// Bodies over 64 KiB are refused (the mail route: `inbound.max_mail_bytes`). See
/// docs/inbound.md for the fields read per family. Families that do not sign their requests take
/// a secret token as the last path segment: **rest-it** (sms, dlr; form or JSON) and **mail**
/// (mail only; multipart/form-data or a form).
#[utoipa::path(
    post,
    path = "/webhooks/{route}/{provider}/{token}",
    operation_id = "postWebhookWithToken",
    tag = "webhooks",
    params(TokenEndpointPath),
    request_body(
        content(
            (std::collections::HashMap<String, String> = "application/x-www-form-urlencoded"),
            (Object = "application/json"),
            (Object = "multipart/form-data"),
        ),
        description = "The provider's fields; on the mail route also file parts, kept as attachments.",
    ),
    responses(
        (status = 200, description = "Accepted or a duplicate.", body = WebhookAccepted),
        (status = 400, response = WebhookMalformed),
        (status = 401, response = WebhookUnauthenticated),
        (status = 403, response = WebhookForbidden),
        (status = 404, response = WebhookNotFound),
        (status = 413, response = WebhookTooLarge),
        (status = 429, response = WebhookTooManyRequests),
        (status = 503, response = WebhookUnavailable),
    ),
)]
async fn with_token(
    State(s): State<WebhookState>,
    Path((route, provider, token)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    timed(s, route, provider, Some(token), req).await
}

/// Handles one request and records how long it took, by route and status.
async fn timed(
    s: WebhookState,
    route: String,
    provider: String,
    token: Option<String>,
    req: Request,
) -> Response {
    let started = Instant::now();
    let metrics = Arc::clone(&s.metrics);
    let route_label = Route::parse(&route).map_or("other", Route::as_str);
    let res = handle(s, route, provider, token, req).await;
    metrics.observe_webhook(route_label, res.status().as_u16(), started.elapsed());
    res
}

fn problem(status: u16, detail: impl Into<String>) -> Response {
    let (code, kind, title) = match status {
        400 => (
            StatusCode::BAD_REQUEST,
            "malformed-webhook",
            "Malformed webhook",
        ),
        401 => (
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Missing credentials",
        ),
        403 => (
            StatusCode::FORBIDDEN,
            "forbidden",
            "Credentials do not verify",
        ),
        404 => (StatusCode::NOT_FOUND, "not-found", "Not found"),
        413 => (StatusCode::PAYLOAD_TOO_LARGE, "too-large", "Body too large"),
        429 => (
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Try again later",
        ),
    };
    let mut r = Problem::new(code, kind, title, detail).into_response();
    if matches!(status, 429 | 503) {
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    r
}

/// The span names the route and the configured endpoint once they are known (never the token,
/// nor an unknown provider's name as sent); the sender, masked, once the body is read.
#[tracing::instrument(
    name = "webhook",
    level = "debug",
    skip_all,
    fields(route = tracing::field::Empty, endpoint = tracing::field::Empty, sender = tracing::field::Empty)
)]
async fn handle(
    s: WebhookState,
    route_text: String,
    provider: String,
    token: Option<String>,
    req: Request,
) -> Response {
    let inner = &s.inner;
    let span = tracing::Span::current();
    let (route, endpoint) =
        match route_and_endpoint(inner, &route_text, &provider, token.is_some(), &span) {
            Ok(x) => x,
            Err(refused) => return refused.into_response(),
        };
    if let Err(refused) = within_rate(inner, endpoint, &peer_of(&req)) {
        return refused.into_response();
    }
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    let headers = req.headers().clone();
    let body = match read_body(req, body_limit(inner, route)).await {
        Ok(b) => b,
        Err(refused) => return refused.into_response(),
    };
    let now = (inner.clock)();
    let header_fn = |name: &str| -> Option<String> {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let in_req = InRequest {
        path_and_query: &path_and_query,
        token: token.as_deref(),
        header: &header_fn,
        body: &body,
    };
    if route == Route::Voice
        && let Some(answering) = &s.answering
        && Answering::takes(&endpoint.family)
    {
        let query = path_and_query.split_once('?').map(|(_, q)| q);
        let (event, called) = match call_event(inner, endpoint, &in_req, query, now) {
            Ok(Some(e)) => e,
            Ok(None) => return StatusCode::NO_CONTENT.into_response(),
            Err(r) => {
                tracing::warn!(endpoint = %provider, route = route.as_str(), status = r.status(), reason = %r, "webhook refused");
                return problem(r.status(), r.to_string());
            }
        };
        return match answering
            .answer(
                &endpoint.name,
                &endpoint.family,
                query,
                event,
                called.as_deref(),
                &inner.writer,
                now,
            )
            .await
        {
            Ok(res) => res,
            Err(r) => problem(r.status, r.detail),
        };
    }
    let parsed = match verified(inner, endpoint, route, &in_req, &headers, &body, now).await {
        Ok(p) => p,
        Err(r) => {
            tracing::warn!(endpoint = %provider, route = route.as_str(), status = r.status(), reason = %r, "webhook refused");
            return problem(r.status(), r.to_string());
        }
    };
    let raw = raw_record(route, &parsed, &body);
    let sender = parsed.sender.as_deref().map(mask).unwrap_or_default();
    span.record("sender", sender.as_str());
    store(inner, endpoint, route, parsed, raw, now, &sender).await
}

/// The route and the configured endpoint a request's path names (recorded in the span as each
/// is known); 404 for an unknown one, or a token where the endpoint takes none (or none where
/// it takes one).
fn route_and_endpoint<'a>(
    inner: &'a Inner,
    route_text: &str,
    provider: &str,
    has_token: bool,
    span: &tracing::Span,
) -> Result<(Route, &'a Endpoint), Refused> {
    let Some(route) = Route::parse(route_text) else {
        return Err(Refused::new(
            404,
            format!("no webhook route {route_text:?}; expected sms|voice|dlr|mail"),
        ));
    };
    span.record("route", route.as_str());
    let Some(endpoint) = inner.endpoints.get(provider) else {
        return Err(Refused::new(
            404,
            format!("no provider endpoint {provider:?} is configured"),
        ));
    };
    span.record("endpoint", endpoint.name.as_str());
    if has_token != endpoint.family.uses_token() {
        return Err(Refused::new(
            404,
            if endpoint.family.uses_token() {
                "this endpoint's URL ends with its token"
            } else {
                "this endpoint's URL has no token segment"
            },
        ));
    }
    Ok((route, endpoint))
}

/// The client's address (unspecified when the server did not say).
fn peer_of(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip())
}

/// 429 when `peer` is over the endpoint's rate.
fn within_rate(inner: &Inner, endpoint: &Endpoint, peer: &IpAddr) -> Result<(), Refused> {
    if let Some(l) = inner.limiters.get(&endpoint.name)
        && !l.check(peer)
    {
        tracing::warn!(endpoint = %endpoint.name, "webhook rate limit reached");
        return Err(Refused::new(
            429,
            format!("more than {} requests per second", endpoint.rate_per_s),
        ));
    }
    Ok(())
}

/// The largest body a route takes.
fn body_limit(inner: &Inner, route: Route) -> usize {
    if route == Route::Mail {
        inner.max_mail_bytes
    } else {
        MAX_WEBHOOK_BYTES
    }
}

/// The body, refused with 413 when its announced length or the bytes sent go over `limit`.
async fn read_body(req: Request, limit: usize) -> Result<Bytes, Refused> {
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > limit
    {
        return Err(Refused::new(
            413,
            format!("the body is {len} bytes; at most {limit} are taken"),
        ));
    }
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| Refused::new(413, format!("the body is over {limit} bytes")))
}

/// Verifies the request and parses it into a record (the mail route also keeps its files).
async fn verified(
    inner: &Inner,
    endpoint: &Endpoint,
    route: Route,
    req: &InRequest<'_>,
    headers: &HeaderMap,
    body: &Bytes,
    now: Timestamp,
) -> Result<Parsed, Rejection> {
    if route == Route::Mail {
        mail(inner, endpoint, req, headers, body, now.0).await
    } else {
        inbound::accept(
            endpoint,
            route,
            req,
            &inner.public_base_url,
            now.0,
            inner.tolerance_s,
        )
    }
}

/// A call's request, verified, as the answering reads it, with the number the caller dialled
/// when the provider names it. `None`: a Vonage progress event (`started`, `ringing`,
/// `answered`; or any call status posted to the application's event URL, which carries no
/// call state) that is acknowledged with 204 and changes nothing, so Vonage goes on with the
/// NCCO it has.
fn call_event(
    inner: &Inner,
    endpoint: &Endpoint,
    req: &InRequest<'_>,
    query: Option<&str>,
    now: Timestamp,
) -> Result<Option<(crate::phone::CallEvent, Option<String>)>, Rejection> {
    let pairs = inbound::verify_only(
        endpoint,
        Route::Voice,
        req,
        &inner.public_base_url,
        now.0,
        inner.tolerance_s,
    )?;
    match &endpoint.family {
        Family::Twilio { .. } => voice::twilio_call(&pairs.unwrap_or_default())
            .map(|e| Some((e, None)))
            .map_err(|m| Rejection::Malformed(m.to_owned())),
        Family::Vonage { .. } => {
            let (callback, called) = inbound::vonage_call(req)?;
            let has_state = query.is_some_and(|q| {
                form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == voice::STATE_PARAM)
            });
            Ok(match callback {
                Callback::Call(e) if e.dial_answered.is_none() || has_state => Some((e, called)),
                Callback::Call(_) | Callback::Progress { .. } => None,
            })
        }
        _ => Err(Rejection::NotHere(format!(
            "endpoint {:?} ({}) takes no call answering",
            endpoint.name,
            endpoint.family.as_str()
        ))),
    }
}

/// What the record keeps of the request: the body as received; for mail the parsed fields and
/// the attachments' names, sizes and hashes (the files are kept apart).
fn raw_record(route: Route, parsed: &Parsed, body: &[u8]) -> String {
    if route == Route::Mail {
        serde_json::to_string(parsed).unwrap_or_default()
    } else {
        String::from_utf8_lossy(body).into_owned()
    }
}

/// Stores the record (a repeat of the same provider id is a duplicate) and answers: the
/// family's 200, or 503 when the store is unavailable.
async fn store(
    inner: &Inner,
    endpoint: &Endpoint,
    route: Route,
    parsed: Parsed,
    raw: String,
    now: Timestamp,
    sender: &str,
) -> Response {
    let provider = &endpoint.name;
    let external_id = parsed.external_id.clone();
    let result = inner
        .writer
        .submit(NewInbound {
            endpoint: provider.clone(),
            parsed,
            raw,
            received_at: now,
        })
        .await;
    match result {
        Ok(a) => {
            let (dup, id) = match a {
                Accepted::New(id) => (false, id),
                Accepted::Duplicate(id) => (true, id),
            };
            tracing::info!(endpoint = %provider, route = route.as_str(), id, duplicate = dup, sender = %sender, "webhook stored");
            answer(&endpoint.family, route, dup, id, &external_id)
        }
        Err(e) => {
            tracing::error!(endpoint = %provider, error = %e, "webhook not stored");
            problem(503, "the store is unavailable; retry later")
        }
    }
}

/// A request refused before it is verified: the status and the detail of its problem answer.
struct Refused {
    status: u16,
    detail: String,
}

impl Refused {
    fn new(status: u16, detail: impl Into<String>) -> Refused {
        Refused {
            status,
            detail: detail.into(),
        }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        problem(self.status, self.detail)
    }
}

/// The answer that makes Twilio send nothing back.
const TWIML_EMPTY: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";

fn answer(family: &Family, route: Route, duplicate: bool, id: i64, external_id: &str) -> Response {
    if matches!(family, Family::Twilio { .. }) && route != Route::Dlr {
        // Twilio reads TwiML from the answer: an empty response sends nothing back.
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/xml")],
            TWIML_EMPTY,
        )
            .into_response();
    }
    let status = if duplicate {
        AcceptedStatus::Duplicate
    } else {
        AcceptedStatus::Accepted
    };
    (
        StatusCode::OK,
        axum::Json(WebhookAccepted {
            status,
            id,
            external_id,
        }),
    )
        .into_response()
}

/// The mail webhook: verified, then its multipart (or form) body read into fields and files.
async fn mail(
    inner: &Inner,
    endpoint: &Endpoint,
    req: &InRequest<'_>,
    headers: &HeaderMap,
    body: &Bytes,
    now: i64,
) -> Result<Parsed, Rejection> {
    inbound::verify_only(
        endpoint,
        Route::Mail,
        req,
        &inner.public_base_url,
        now,
        inner.tolerance_s,
    )?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut files: Vec<(String, String, Bytes)> = Vec::new();
    if content_type.starts_with("multipart/form-data") {
        let boundary = multer::parse_boundary(content_type)
            .map_err(|e| Rejection::Malformed(format!("multipart body without a boundary: {e}")))?;
        let data = body.clone();
        let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(data) });
        let mut mp = multer::Multipart::new(stream, boundary);
        loop {
            let field = match mp.next_field().await {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return Err(Rejection::Malformed(format!("multipart body: {e}"))),
            };
            let name = field.name().unwrap_or("").to_owned();
            let file_name = field.file_name().map(str::to_owned);
            let ctype = field.content_type().map_or_else(
                || "application/octet-stream".to_owned(),
                ToString::to_string,
            );
            let bytes = field
                .bytes()
                .await
                .map_err(|e| Rejection::Malformed(format!("multipart field {name:?}: {e}")))?;
            match file_name {
                Some(f) => files.push((f, ctype, bytes)),
                None => pairs.push((name, String::from_utf8_lossy(&bytes).into_owned())),
            }
        }
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        pairs = inbound::verify::form_pairs(body);
    } else {
        return Err(Rejection::Malformed(format!(
            "the mail webhook takes multipart/form-data or a form, not {content_type:?}"
        )));
    }
    let mut parsed = inbound::parse::mail_fields(&Fields::from_pairs(&pairs))?;
    // The provider's verdict on the sender, from the verified request's own fields.
    parsed.auth = Some(inbound::auth::for_webhook(
        &pairs,
        parsed.sender.as_deref().unwrap_or_default(),
        &inner.trusted_authserv_ids,
    ));
    for (name, ctype, bytes) in files.iter().take(50) {
        let meta = inbound::files::save(
            &inner.attachments_dir,
            inner.max_attachment_bytes,
            name,
            ctype,
            bytes,
        )
        .await
        .map_err(|e| Rejection::Unavailable(format!("an attachment could not be kept: {e}")))?;
        parsed.attachments.push(meta);
    }
    Ok(parsed)
}
