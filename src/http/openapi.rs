//! The OpenAPI 3.1 document of the HTTP API, served at `/api/v1/openapi.json`.
//!
//! Nothing here lists the operations: each handler carries its own `#[utoipa::path]`, the routers
//! are utoipa-axum's `OpenApiRouter`s fed by `routes!`, so a route is registered and documented by
//! the same line, and [`super::app`] serves the document of exactly the routes it built. This
//! module holds what the operations share: the front matter (description, tags, security
//! schemes), the problem answers, the parameters several operations take.

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Type};
use utoipa::{IntoParams, Modify, OpenApi, ToResponse, ToSchema};

use super::problem::{ProblemBody, TemplateProblemBody};

/// What the document says before its operations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Messo",
        description = include_str!("openapi.md"),
        license(name = "EUPL-1.2", identifier = "EUPL-1.2"),
    ),
    servers((url = "http://127.0.0.1:8080")),
    tags(
        (name = "tickets", description = "The ticket ingest API for the CRM."),
        (name = "webhooks", description = "Inbound replies and delivery receipts from providers."),
        (name = "admin", description = "Admin sessions, tickets at risk, audit and users."),
        (name = "desk", description = "The URP's working console: find a ticket, read all of it, clear the work queues, act as the office."),
        (name = "reports", description = "Compliance reports and criticalities (monitoring, agreement section 1.2)."),
        (name = "templates", description = "Message templates: preview, validate, propose, publish, roll back, test-send."),
        (name = "console", description = "The admin console's page and assets."),
        (name = "desk", description = "The URP's working console: search, the ticket page, the work queues and staff actions."),
        (name = "ops", description = "Health, readiness, metrics and this document."),
        (name = "portal", description = "The citizen's status page (opened by the signed link in every message) and the feed the administration's personal portal embeds."),
    ),
    components(
        schemas(ProblemBody, TemplateProblemBody),
        responses(
            BadRequest, MalformedJson, Unauthorized, Forbidden, NotFound, Conflict,
            PayloadTooLarge, UnsupportedMediaType, Invalid, Internal, TemplateRefused,
            WebhookMalformed, WebhookUnauthenticated, WebhookForbidden, WebhookNotFound,
            WebhookTooLarge, WebhookTooManyRequests, WebhookUnavailable, Gone, TooManyRequests,
            Busy,
        ),
    ),
    modifiers(&SecuritySchemes),
)]
struct FrontMatter;

/// The security schemes the operations name.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        for (name, scheme) in api_and_admin_schemes()
            .into_iter()
            .chain(webhook_schemes())
            .chain([status_link_scheme()])
        {
            components.add_security_scheme(name, scheme);
        }
    }
}

/// A bearer token of `format`.
fn bearer(format: &str, description: &str) -> SecurityScheme {
    SecurityScheme::Http(
        HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format(format)
            .description(Some(description))
            .build(),
    )
}

/// A request header carrying a credential.
fn header(name: &str, description: &str) -> SecurityScheme {
    SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
        name,
        description,
    )))
}

/// The CRM's and the portal's API tokens, the console's session cookie, an admin's token.
fn api_and_admin_schemes() -> [(&'static str, SecurityScheme); 3] {
    [
        (
            "apiToken",
            bearer(
                "messo_<id>_<secret>",
                "A ticket API token `messo_<id>_<secret>` from `[[http.tokens]]` (its `id` and \
                 the argon2 hash of the whole token in configuration; `messo token new`). A \
                 token whose id is not configured is refused at once; after 10 wrong secrets \
                 for one id from one address in a minute, 429. The roles listed in an \
                 operation's requirement are the token scopes it needs (`read`, `write`, or \
                 `portal` for the citizen feed only).",
            ),
        ),
        (
            "adminSession",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                super::admin::COOKIE,
                "The console session set by `POST /api/v1/admin/login`. Changes (any method \
                 but GET and HEAD) also need the `X-CSRF-Token` header. The roles listed in \
                 an operation's requirement are the least role needed (viewer < editor < \
                 admin).",
            ))),
        ),
        (
            "adminToken",
            bearer(
                "messo_<id>_<secret>",
                "An admin user's bearer token; no CSRF header. When an `Authorization` header \
                 is present it is used and the cookie is ignored. The roles listed are the \
                 least role needed. A token stops working when its user's password, role or \
                 state changes.",
            ),
        ),
    ]
}

/// How the providers' webhooks are signed.
fn webhook_schemes() -> [(&'static str, SecurityScheme); 4] {
    [
        (
            "twilioSignature",
            header(
                "X-Twilio-Signature",
                "Twilio family: Base64(HMAC-SHA1(auth token, `http.public_base_url` + path and \
                 query as received + every posted parameter name and value, sorted by name)).",
            ),
        ),
        (
            "vonageJwt",
            bearer(
                "JWT",
                "Vonage family (voice): a JWT signed HS256 with the account's signature secret; \
                 its `iat` more than `inbound.signature_tolerance_s` (300) away from now, or a \
                 `payload_hash` that is not the hex SHA-256 of the body, is 403.",
            ),
        ),
        (
            "messoSignature",
            header(
                "X-Messo-Signature",
                "Generic family: `v1=<hex HMAC-SHA256(secret, \"<timestamp>.<raw body>\")>`; \
                 several comma-separated `v1=` values may be sent. Goes with \
                 `X-Messo-Timestamp`.",
            ),
        ),
        (
            "messoTimestamp",
            header(
                "X-Messo-Timestamp",
                "Generic family: Unix seconds; more than `inbound.signature_tolerance_s` (300) \
                 away from now is 403.",
            ),
        ),
    ]
}

/// The token of a citizen's status link.
fn status_link_scheme() -> (&'static str, SecurityScheme) {
    (
        "statusLink",
        bearer(
            "status link token",
            "The token of a citizen's status link (the last segment of `/s/<token>`): \
             HMAC-signed, naming one ticket, with an expiry (`portal.link_valid_days`) and \
             revocable per ticket. It opens only its own ticket.",
        ),
    )
}

/// The document of `routes`: the front matter and every operation the routes carry.
pub fn document(routes: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let mut doc = FrontMatter::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.merge(routes);
    doc
}

/// Where the served document is kept: filled once the routes it describes are built.
pub type Served = Arc<OnceLock<String>>;

/// The OpenAPI document of the whole HTTP API.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "getOpenApi",
    tag = "ops",
    summary = "This document",
    responses(
        (status = 200, description = "The OpenAPI document of the whole HTTP API.",
         body = Object, content_type = "application/json"),
    ),
)]
pub async fn serve(State(doc): State<Served>) -> Response {
    match doc.get() {
        Some(text) => {
            let mut res = text.clone().into_response();
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            res
        }
        None => super::Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Try again later",
            "the document is being built",
        )
        .into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Problem answers shared by several operations (`#/components/responses/…`).

fn problem_answer(
    description: &str,
    schema: &str,
    retry_after: bool,
) -> RefOr<utoipa::openapi::Response> {
    let mut res = ResponseBuilder::new().description(description).content(
        "application/problem+json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(schema)))
            .build(),
    );
    if retry_after {
        res = res.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Some(
                    utoipa::openapi::schema::ObjectBuilder::new().schema_type(Type::Integer),
                ))
                .description(Some("Seconds to wait before retrying."))
                .build(),
        );
    }
    res.build().into()
}

macro_rules! problem_answers {
    ($($name:ident($schema:ident, $retry:literal): $description:literal;)*) => {$(
        #[doc = $description]
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<utoipa::openapi::Response>) {
                (stringify!($name), problem_answer($description, stringify!($schema), $retry))
            }
        }
    )*};
}

problem_answers! {
    BadRequest(Problem, false): "The request cannot be read.";
    MalformedJson(Problem, false): "The body is not valid JSON (`malformed-json`).";
    Unauthorized(Problem, false): "No credentials, or unknown ones.";
    Forbidden(Problem, false): "The credentials lack the scope or role; for the admin API also a \
        missing or wrong `X-CSRF-Token` with a cookie session, or the four-eyes rule.";
    NotFound(Problem, false): "Not found.";
    Conflict(Problem, false): "The ticket's state does not allow this, or the ticket number \
        exists with other data (naming the fields that differ).";
    PayloadTooLarge(Problem, false): "The body is larger than 64 KiB.";
    UnsupportedMediaType(Problem, false): "The body is not sent as `application/json`.";
    Invalid(Problem, false): "Invalid fields, each named in `errors`; or an `Idempotency-Key` \
        already used with a different request.";
    Internal(Problem, false): "The request could not be completed; nothing was changed.";
    TemplateRefused(TemplateProblem, false): "The template does not compile or does not render; \
        nothing was stored and the live version stays.";
    WebhookMalformed(Problem, false): "Verified, but the body cannot be read; the detail names \
        the field. Nothing is stored.";
    WebhookUnauthenticated(Problem, false): "No signature, timestamp or token at all. Nothing is \
        stored.";
    WebhookForbidden(Problem, false): "A signature or token that does not verify, or a stale \
        timestamp. Nothing is stored.";
    WebhookNotFound(Problem, false): "An unknown route or provider, a provider whose family does \
        not take this route, or a token segment where none belongs (or missing).";
    WebhookTooLarge(Problem, false): "The body is over 64 KiB (the mail route: \
        `inbound.max_mail_bytes`).";
    WebhookTooManyRequests(Problem, true): "More than the endpoint's `rate_per_s` from one \
        client address.";
    WebhookUnavailable(Problem, true): "The store is unavailable, or an attachment could not be \
        kept; providers retry.";
    Gone(Problem, false): "The status link expired or was revoked; nothing of the ticket is \
        shown.";
    TooManyRequests(Problem, true): "This client made too many requests without a portal token \
        (`portal.requests_per_minute`); `Retry-After: 60`.";
    Busy(Problem, true): "Too many credentials are being checked right now (argon2 is bounded); \
        retry after `Retry-After` seconds.";
}

// ---------------------------------------------------------------------------------------------
// Parameters several operations take.

/// `Idempotency-Key` on the ticket API's writes.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKey {
    /// 1–255 visible ASCII characters. The same key (per token) with the same body returns the
    /// stored status and body again with `Idempotent-Replayed: true`; with another body, 422. On
    /// events the key is also the event's idempotency key.
    #[param(
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 255,
        nullable = false
    )]
    _key: Option<String>,
}

/// `X-CSRF-Token` on the admin API's changes.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct CsrfToken {
    /// Required with a cookie session (the `csrf` of the log-in answer); a missing or wrong one
    /// is 403. Not used with a bearer token.
    #[param(rename = "X-CSRF-Token", nullable = false)]
    _token: Option<String>,
}

/// The ticket number in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TicketNumber {
    /// The ticket number; a `/` is written `%2F` (`2026%2F000123`).
    #[allow(dead_code)] // described, never read
    number: String,
}

/// The language of a page or a feed, in a query.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PortalLang {
    /// The language of the words (`it` or `en`); default: the citizen's language on the ticket.
    #[param(inline)]
    #[allow(dead_code)] // described, never read
    lang: Option<LangParam>,
}

// `it` or `en`.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // described, never built
pub enum LangParam {
    It,
    En,
}
