//! The admin API under `/api/v1/admin` and the console at `/admin`.
//!
//! - Who: users with a role (viewer < editor < admin), signed in with a password (argon2) for a
//!   console session (an `HttpOnly`, `SameSite=Strict` cookie plus a CSRF token sent back in
//!   `X-CSRF-Token` on every change), or with a bearer token `messo_<id>_<secret>`.
//! - What: templates can be listed, previewed (with a sample or a real ticket), validated,
//!   saved as proposals, published, rolled back, test-sent, and their history read. Every change
//!   is checked by [`Templates::check`] first: a refused edit stores nothing and the live version
//!   stays. Every change writes an audit record in the same transaction.
//! - Log-in attempts are limited per client address (whatever the user names: password
//!   spraying) and per user name and address, before the body is hashed; the log-in takes only
//!   `application/json` from the same origin (`Origin` / `Sec-Fetch-Site` checked against
//!   `http.public_base_url` or the `Host`), so no cross-site form can sign anyone in.
//! - Users: created once (409 if the name exists, even disabled); a change of password, role or
//!   state ends the user's sessions and revokes her tokens; the last enabled admin cannot be
//!   demoted or disabled (rules in `store::admin_users`).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Verified, problem_response, split_token, token_digest, too_many_misses};
use super::limit::{DEFAULT_MAX_KEYS, KeyedLimit};
use super::openapi::{
    BadRequest, Busy, Conflict, CsrfToken, Forbidden, Internal, Invalid, MalformedJson, NotFound,
    TemplateRefused, TicketNumber, Unauthorized, UnsupportedMediaType,
};
use super::{Peer, Problem, schema};
use crate::config::Admin;
use crate::domain::{Address, AddressError, Channel, Lang};
use crate::inbound::verify;
use crate::store::{
    AdminError, AdminUser, Role, Store, TemplateStoreError, TemplateVersion, UserChange,
};
use crate::templates::{self, Audience, Content, Key, Live, Templates};
use crate::time::{Clock, Timestamp};

/// The session cookie's name.
pub const COOKIE: &str = "messo_admin";

const CONSOLE_HTML: &str = include_str!("console/index.html");
const CONSOLE_JS: &str = include_str!("console/app.js");
const CONSOLE_DESK_JS: &str = include_str!("console/desk.js");
const CONSOLE_CSS: &str = include_str!("console/app.css");

/// The console's Content-Security-Policy: nothing from elsewhere, no inline script; previews of
/// HTML e-mails run in a sandboxed frame without scripts.
pub const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; frame-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// What the admin handlers share.
#[derive(Clone)]
pub struct AdminState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    templates: Arc<Templates>,
    clock: Clock,
    config: Admin,
    tz: chrono_tz::Tz,
    secure_cookie: bool,
    wake: Arc<tokio::sync::Notify>,
    /// Log-in attempts per user name and client address.
    logins: KeyedLimit<(String, IpAddr)>,
    /// Log-in attempts per client address, whatever the user name.
    login_addresses: KeyedLimit<IpAddr>,
    /// `scheme://host[:port]` of `http.public_base_url`: the origin a log-in may come from.
    public_origin: String,
    /// Peers whose `X-Forwarded-For` names the client (`portal.trusted_proxies`).
    trusted_proxies: Vec<IpAddr>,
    /// SHA-256 of a verified bearer token → (token id, user id, the argon2 hash it matched).
    verified: Verified<(i64, i64, String)>,
    /// Bearer checks that missed the cache, per token id and client address.
    misses: KeyedLimit<(i64, IpAddr)>,
    /// argon2 verifications made (log-ins and bearer tokens).
    verifications: AtomicU64,
}

tokio::task_local! {
    /// The client of the request being handled (set by [`with_peer`]).
    static CLIENT: IpAddr;
}

/// The client of the request being handled: its address, or behind a trusted proxy the one
/// `X-Forwarded-For` names.
fn client() -> IpAddr {
    CLIENT
        .try_with(|ip| *ip)
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

pub(super) async fn with_peer(State(st): State<AdminState>, req: Request, next: Next) -> Response {
    let ip = super::portal::client_ip(
        Peer::of(req.extensions()),
        req.headers(),
        &st.inner.trusted_proxies,
    );
    CLIENT.scope(ip, next.run(req)).await
}

/// `scheme://host[:port]` of a base URL.
fn origin_of(url: &str) -> String {
    match url.find("://") {
        Some(i) => {
            let rest = &url[i + 3..];
            let end = rest.find('/').map_or(url.len(), |j| i + 3 + j);
            url[..end].to_ascii_lowercase()
        }
        None => url.to_ascii_lowercase(),
    }
}

impl AdminState {
    /// `public_base_url` decides whether the cookie is `Secure` (https).
    pub fn new(
        store: Store,
        templates: Arc<Templates>,
        clock: Clock,
        config: Admin,
        tz: chrono_tz::Tz,
        public_base_url: &str,
        wake: Arc<tokio::sync::Notify>,
    ) -> AdminState {
        AdminState::build(
            store,
            templates,
            clock,
            config,
            tz,
            public_base_url,
            wake,
            DEFAULT_MAX_KEYS,
            Vec::new(),
        )
    }

    /// The daemon's: like [`AdminState::new`], with `http.max_tracked_clients` for the log-in
    /// limiters and `portal.trusted_proxies` to name clients behind a reverse proxy.
    pub fn from_config(
        store: Store,
        templates: Arc<Templates>,
        clock: Clock,
        config: &crate::config::Config,
        wake: Arc<tokio::sync::Notify>,
    ) -> AdminState {
        AdminState::build(
            store,
            templates,
            clock,
            config.admin.clone(),
            config.calendar.time_zone,
            &config.http.public_base_url,
            wake,
            config.http.limits.max_tracked_clients,
            config.portal.trusted_proxies.clone(),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        store: Store,
        templates: Arc<Templates>,
        clock: Clock,
        config: Admin,
        tz: chrono_tz::Tz,
        public_base_url: &str,
        wake: Arc<tokio::sync::Notify>,
        max_clients: usize,
        trusted_proxies: Vec<IpAddr>,
    ) -> AdminState {
        AdminState {
            inner: Arc::new(Inner {
                store,
                templates,
                clock,
                tz,
                secure_cookie: public_base_url.starts_with("https://"),
                wake,
                logins: KeyedLimit::per_minute(config.login_attempts_per_minute, max_clients),
                login_addresses: KeyedLimit::per_minute(
                    config.login_attempts_per_address_per_minute,
                    max_clients,
                ),
                public_origin: origin_of(public_base_url),
                trusted_proxies,
                verified: Verified::default(),
                misses: KeyedLimit::per_minute(super::auth::MISSES_PER_MINUTE, max_clients),
                verifications: AtomicU64::new(0),
                config,
            }),
        }
    }

    /// argon2 verifications made so far (log-ins and first uses of bearer tokens).
    pub fn verifications(&self) -> u64 {
        self.inner.verifications.load(Ordering::Relaxed)
    }

    /// Forgets the clients whose allowance is full again (the daemon calls it every minute).
    pub fn prune(&self) {
        let s = &self.inner;
        s.logins.prune();
        s.login_addresses.prune();
        s.misses.prune();
    }

    /// Keys remembered by the log-in limiters now (per user and address, per address).
    pub fn tracked_clients(&self) -> (usize, usize) {
        (self.inner.logins.len(), self.inner.login_addresses.len())
    }

    pub fn templates(&self) -> &Arc<Templates> {
        &self.inner.templates
    }

    /// Loads the live versions from the store into the template set (at start, and when
    /// another instance published).
    pub async fn reload(&self) -> Result<(), TemplateStoreError> {
        let lives = self.inner.store.templates().live_templates().await?;
        for (key, why) in self.inner.templates.install(&lives) {
            tracing::error!(template = %key, reason = %why,
                "a stored live version fails the template gate; the version before (at start, the bundled default) stays live");
        }
        Ok(())
    }
}

/// The admin routes and the console with their documentation (merged into the whole API by
/// [`super::app`]).
pub fn routes(state: AdminState) -> OpenApiRouter {
    let api = OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(list_templates))
        .routes(routes!(get_template))
        .routes(routes!(preview))
        .routes(routes!(validate))
        .routes(routes!(save))
        .routes(routes!(publish))
        .routes(routes!(rollback))
        .routes(routes!(history))
        .routes(routes!(test_send))
        .routes(routes!(at_risk))
        .routes(routes!(revoke_links))
        .routes(routes!(audit))
        .routes(routes!(users, add_user))
        .routes(routes!(change_user))
        .layer(axum::middleware::from_fn(no_store))
        // Four parts of at most 64 KiB each, and a little JSON around them.
        .layer(axum::extract::DefaultBodyLimit::max(320 * 1024));
    let console = OpenApiRouter::new()
        .routes(routes!(console_page))
        .routes(routes!(console_page_slash))
        .routes(routes!(console_asset));
    api.merge(console)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            with_peer,
        ))
        .with_state(state)
}

/// The admin routes and the console.
pub fn router(state: AdminState) -> Router {
    routes(state).split_for_parts().0
}

pub(super) async fn no_store(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    res
}

fn console_headers(content_type: &'static str, body: &'static str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONSOLE_CSP),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// The admin console page
///
/// The single-page console; it signs in through `POST /api/v1/admin/login`. Served with a strict
/// Content-Security-Policy, `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`.
#[utoipa::path(
    get,
    path = "/admin",
    operation_id = "consolePage",
    tag = "console",
    responses((status = 200, description = "The page.", body = String, content_type = "text/html")),
)]
async fn console_page() -> Response {
    console_headers("text/html; charset=utf-8", CONSOLE_HTML)
}

/// The admin console page
///
/// The single-page console; it signs in through `POST /api/v1/admin/login`. Served with a strict
/// Content-Security-Policy, `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`.
#[utoipa::path(
    get,
    path = "/admin/",
    operation_id = "consolePageSlash",
    tag = "console",
    responses((status = 200, description = "The page.", body = String, content_type = "text/html")),
)]
async fn console_page_slash() -> Response {
    console_page().await
}

/// A console asset's name.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // described, never built
struct AssetName {
    /// Other names answer 404.
    #[param(inline)]
    file: Asset,
}

#[derive(ToSchema)]
#[allow(dead_code)] // described, never built
enum Asset {
    #[serde(rename = "app.js")]
    AppJs,
    #[serde(rename = "desk.js")]
    DeskJs,
    #[serde(rename = "app.css")]
    AppCss,
}

/// A console asset
///
/// Served with a strict Content-Security-Policy, `X-Frame-Options: DENY`, `Referrer-Policy:
/// no-referrer`.
#[utoipa::path(
    get,
    path = "/admin/assets/{file}",
    operation_id = "consoleAsset",
    tag = "console",
    params(AssetName),
    responses(
        (status = 200, description = "The asset.",
         content((String = "text/javascript"), (String = "text/css"))),
        (status = 404, response = NotFound),
    ),
)]
async fn console_asset(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "app.js" => console_headers("text/javascript; charset=utf-8", CONSOLE_JS),
        "desk.js" => console_headers("text/javascript; charset=utf-8", CONSOLE_DESK_JS),
        "app.css" => console_headers("text/css; charset=utf-8", CONSOLE_CSS),
        _ => Problem::not_found("no such asset").into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Who is asking.

/// A signed-in user.
#[derive(Debug, Clone)]
struct Actor {
    user: AdminUser,
    csrf: Option<String>,
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Authentication required",
        detail,
    )
}

fn forbidden(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "forbidden", "Not allowed", detail)
}

fn bad_request(detail: impl Into<String>) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "bad-request",
        "Unreadable request",
        detail,
    )
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn random_token() -> Result<String, Problem> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        tracing::error!(error = %e, "no randomness");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "no randomness",
        )
    })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

pub use super::auth::hash_secret;

/// A new bearer token's secret part (the whole token is `messo_<id>_<secret>`).
pub fn new_token_secret() -> Result<String, super::auth::SecretError> {
    super::auth::random_hex(24)
}

impl AdminState {
    /// Refuses a caller who is not signed in with at least `role` (a console session or an
    /// admin token), for routes of other modules that the console reads.
    pub(super) async fn require(
        &self,
        headers: &HeaderMap,
        method: &Method,
        role: Role,
    ) -> Result<(), Problem> {
        self.actor(headers, method, role).await.map(|_| ())
    }

    /// The caller's time zone (the calendar's), for instants shown to people.
    pub(super) fn tz(&self) -> chrono_tz::Tz {
        self.inner.tz
    }

    /// The signed-in caller, at least `role` (a cookie session changing something must carry
    /// its CSRF token), for routes of other modules that act in the caller's name.
    pub(super) async fn acting(
        &self,
        headers: &HeaderMap,
        method: &Method,
        role: Role,
    ) -> Result<AdminUser, Problem> {
        self.actor(headers, method, role).await.map(|a| a.user)
    }

    /// The store the console works on.
    pub(super) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The console's clock.
    pub(super) fn now(&self) -> Timestamp {
        (self.inner.clock)()
    }

    /// Wakes the daemon's pass (after a change that owes messages).
    pub(super) fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// The caller, at least `role`; a cookie session changing something must carry its CSRF
    /// token.
    async fn actor(
        &self,
        headers: &HeaderMap,
        method: &Method,
        role: Role,
    ) -> Result<Actor, Problem> {
        let s = &self.inner;
        let actor = if headers.contains_key(header::AUTHORIZATION) {
            let token = super::auth::bearer(headers, "messo_<id>_<secret>")?;
            let (id, secret) = split_token(&token)
                .and_then(|(id, secret)| Some((id.parse::<i64>().ok()?, secret)))
                .ok_or_else(|| {
                    unauthorized("expected Authorization: Bearer messo_<id>_<secret>")
                })?;
            // An unknown or revoked id is refused by one indexed read, with no hashing.
            let (hash, user) = s
                .store
                .admin()
                .admin_token(id)
                .await?
                .ok_or_else(|| unauthorized("unknown or revoked token"))?;
            let digest = token_digest(&token);
            let cached = s
                .verified
                .get(&digest)
                .is_some_and(|(t, u, h)| t == id && u == user.id && h == hash);
            if !cached {
                if !s.misses.check(&(id, client())) {
                    return Err(too_many_misses());
                }
                s.verifications.fetch_add(1, Ordering::Relaxed);
                if !super::auth::verify(secret.to_owned(), hash.clone()).await? {
                    return Err(unauthorized("unknown or revoked token"));
                }
                s.verified.insert(digest, (id, user.id, hash));
            }
            Actor { user, csrf: None }
        } else if let Some(cookie) = cookie_value(headers) {
            let (user, csrf) = s
                .store
                .admin()
                .admin_session(&sha256_hex(&cookie), (s.clock)())
                .await?
                .ok_or_else(|| unauthorized("the session has expired: sign in again"))?;
            if *method != Method::GET && *method != Method::HEAD {
                let sent = headers
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !verify::ct_eq(sent.as_bytes(), csrf.as_bytes()) {
                    return Err(forbidden("missing or wrong X-CSRF-Token header"));
                }
            }
            Actor {
                user,
                csrf: Some(csrf),
            }
        } else {
            return Err(unauthorized(
                "sign in at /admin, or send Authorization: Bearer messo_<id>_<secret>",
            ));
        };
        if actor.user.role < role {
            return Err(forbidden(format!(
                "this needs the {} role; {} has {}",
                role.as_str(),
                actor.user.username,
                actor.user.role.as_str()
            )));
        }
        Ok(actor)
    }

    fn rfc(&self, t: Timestamp) -> String {
        t.to_chrono().with_timezone(&self.inner.tz).to_rfc3339()
    }

    fn version_json(&self, v: &TemplateVersion) -> VersionBody {
        VersionBody {
            version: v.version,
            state: v.state.clone(),
            subject: v.content.subject.clone(),
            text: v.content.text.clone(),
            html: v.content.html.clone(),
            sms: v.content.sms.clone(),
            io_subject: v.content.io_subject.clone(),
            io_markdown: v.content.io_markdown.clone(),
            note: v.note.clone(),
            author: v.author.clone(),
            // The bundled default (version 0) was never created by anyone.
            created_at: (v.version != 0).then(|| self.rfc(v.created_at)),
            published_by: v.published_by.clone(),
            published_at: v.published_at.map(|t| self.rfc(t)),
            restores: v.restores,
        }
    }
}

// The states of a template version.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // described, never built
enum VersionState {
    Live,
    Proposed,
    Retired,
    Withdrawn,
}

/// One version of a template.
#[derive(Serialize, ToSchema)]
#[schema(as = TemplateVersion)]
struct VersionBody {
    /// 0 is the bundled default.
    version: i64,
    #[schema(inline, value_type = VersionState)]
    state: String,
    subject: String,
    text: String,
    #[schema(required = true)]
    html: Option<String>,
    #[schema(required = true)]
    sms: Option<String>,
    /// The subject of the message in the app IO; null for a notice IO does not carry.
    #[schema(required = true)]
    io_subject: Option<String>,
    /// The Markdown body of the message in the app IO; null with `io_subject`.
    #[schema(required = true)]
    io_markdown: Option<String>,
    note: String,
    author: String,
    /// Null only for version 0 in the history.
    #[schema(format = DateTime, required = true)]
    created_at: Option<String>,
    #[schema(required = true)]
    published_by: Option<String>,
    #[schema(format = DateTime, required = true)]
    published_at: Option<String>,
    /// For a version made by a rollback: the version whose words it restores (the first of a
    /// chain of rollbacks; 0: the bundled default). Null otherwise.
    #[schema(required = true)]
    restores: Option<i64>,
}

/// A role, from least to most trusted: viewer < editor < admin.
#[derive(ToSchema)]
#[schema(as = Role)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // described, never built
enum RoleName {
    Viewer,
    Editor,
    Admin,
}

pub(super) fn parse_body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T, Problem> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            bad_request(format!("the body is not the expected JSON: {}", e.inner()))
        } else {
            bad_request(format!("{path}: {}", e.inner()))
        }
    })
}

pub(super) fn json_response<T: Serialize>(status: StatusCode, body: T) -> Response {
    (status, axum::Json(body)).into_response()
}

/// 422 listing each template problem (part, line, column, sample, message).
fn refused(problems: &[templates::Problem]) -> Response {
    super::problem::template_refused(problems)
}

fn key_of(audience: &str, kind: &str, lang: &str, t: &Templates) -> Result<Key, Problem> {
    let audience: Audience = audience
        .parse()
        .map_err(|e: crate::domain::UnknownName| Problem::not_found(e.to_string()))?;
    let lang: Lang = lang
        .parse()
        .map_err(|_| Problem::not_found(format!("unknown language {lang:?}")))?;
    let key = Key::new(audience, kind, lang);
    if t.catalog().defaults.contains_key(&key) {
        Ok(key)
    } else {
        Err(Problem::not_found(format!("no template {key}")))
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions.

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Login)]
struct LoginBody {
    /// Trimmed and lower-cased.
    username: String,
    password: String,
}

/// A console session just opened.
#[derive(Serialize, ToSchema)]
#[schema(as = Session)]
struct SessionBody<'a> {
    username: &'a str,
    #[schema(value_type = RoleName)]
    role: Role,
    /// Send it back in `X-CSRF-Token` on every change made with this session.
    csrf: &'a str,
}

/// Who is signed in.
#[derive(Serialize, ToSchema)]
#[schema(as = Me)]
struct MeBody<'a> {
    username: &'a str,
    #[schema(value_type = RoleName)]
    role: Role,
    /// The session's CSRF token; null for a bearer token.
    #[schema(required = true)]
    csrf: Option<&'a str>,
    /// Whether publishing needs another administrator than the author.
    four_eyes: bool,
}

fn too_many_logins() -> Response {
    tracing::warn!("admin log-in rate limit reached");
    problem_response(Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        "Too many attempts",
        "troppi tentativi di accesso: riprovi tra un minuto",
    ))
}

/// The log-in must be JSON from our own origin: a cross-site page can neither send a simple
/// `text/plain` or form POST (refused by type) nor a JSON one (browsers preflight it, and we
/// answer no preflight; `Origin` and `Sec-Fetch-Site` would name the other site anyway).
fn same_origin_json(headers: &HeaderMap, public_origin: &str) -> Result<(), Problem> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "media-type",
            "Unsupported media type",
            "send the log-in as Content-Type: application/json",
        ));
    }
    let cross =
        || forbidden("the log-in must come from the console's own site (Origin / Sec-Fetch-Site)");
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().map_err(|_| cross())?;
        if !matches!(site, "same-origin" | "none") {
            return Err(cross());
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().map_err(|_| cross())?.to_ascii_lowercase();
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_ascii_lowercase);
        let same_host = host
            .is_some_and(|h| origin == format!("http://{h}") || origin == format!("https://{h}"));
        if origin != public_origin && !same_host {
            return Err(cross());
        }
    }
    Ok(())
}

/// Sign in to the console
///
/// Checks the password (argon2) and opens a session: the `messo_admin` cookie and a CSRF token.
/// The body must be `application/json` (415 otherwise) and the request must come from the
/// console's own origin: an `Origin` other than `http.public_base_url`'s or the `Host`'s, or a
/// `Sec-Fetch-Site` other than `same-origin`/`none`, is 403. Attempts are limited per client
/// address (`admin.login_attempts_per_address_per_minute`) and per user name and address
/// (`admin.login_attempts_per_minute`), before any hashing; failures are audited. A wrong user
/// name costs the same as a wrong password. The body may be at most 16 KiB.
#[utoipa::path(
    post,
    path = "/api/v1/admin/login",
    operation_id = "adminLogin",
    tag = "admin",
    request_body = LoginBody,
    responses(
        (status = 200, description = "Signed in.", body = SessionBody,
         headers(("Set-Cookie" = String, description = "`messo_admin=<token>; HttpOnly; SameSite=Strict; Path=/; Max-Age=<admin.session_hours × 3600>` (`; Secure` when `http.public_base_url` is https)."))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, description = "Too many attempts.", body = super::problem::ProblemBody,
         content_type = "application/problem+json",
         headers(("Retry-After" = i64, description = "Seconds to wait before retrying."))),
        (status = 500, response = Internal),
        (status = 503, response = Busy),
    ),
)]
async fn login(State(st): State<AdminState>, req: Request) -> Result<Response, Problem> {
    let s = &st.inner;
    let peer = client();
    // Cheap refusals first: wrong type or origin, then the address's allowance, before the body
    // is even read.
    same_origin_json(req.headers(), &s.public_origin)?;
    if !s.login_addresses.check(&peer) {
        return Ok(too_many_logins());
    }
    let bytes = axum::body::to_bytes(req.into_body(), 16 * 1024)
        .await
        .map_err(|_| bad_request("the body is larger than 16 KiB"))?;
    let body: LoginBody = parse_body(&bytes)?;
    let username = body.username.trim().to_lowercase();
    let failed = |username: &str| {
        let username = username.to_owned();
        async move {
            let now = (s.clock)();
            // A name that could not be a user's is recorded by length only.
            let who = if valid_username(&username) {
                username.clone()
            } else {
                format!("<{} caratteri>", username.chars().count())
            };
            s.store
                .admin()
                .audit(now, &who, "login.failed", &who, &json!({}))
                .await?;
            Err::<Response, Problem>(unauthorized("nome utente o password non corretti"))
        }
    };
    if !valid_username(&username) || body.password.len() > MAX_PASSWORD_BYTES {
        // No user can have this name (or password): nothing to hash.
        return failed(&username).await;
    }
    if !s.logins.check(&(username.clone(), peer)) {
        return Ok(too_many_logins());
    }
    let user = s.store.admin().admin_user(&username).await?;
    let hash = user
        .as_ref()
        .filter(|u| !u.disabled)
        .and_then(|u| u.password_hash.clone());
    s.verifications.fetch_add(1, Ordering::Relaxed);
    // A wrong name, a disabled user and a wrong password take the same work and the same time.
    let ok = super::auth::verify_or_dummy(body.password, hash).await?;
    let user = match user {
        Some(u) if ok && !u.disabled => u,
        _ => return failed(&username).await,
    };
    let token = random_token()?;
    let csrf = random_token()?;
    let now = (s.clock)();
    let expires = now.plus(i64::from(s.config.session_hours) * 3600);
    s.store
        .admin()
        .add_admin_session(&sha256_hex(&token), &user, &csrf, now, expires)
        .await?;
    let cookie = format!(
        "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        i64::from(s.config.session_hours) * 3600,
        if s.secure_cookie { "; Secure" } else { "" }
    );
    let mut res = json_response(
        StatusCode::OK,
        SessionBody {
            username: &user.username,
            role: user.role,
            csrf: &csrf,
        },
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// Passwords longer than this (in bytes) are refused without hashing.
const MAX_PASSWORD_BYTES: usize = 1024;

/// Sign out
///
/// Ends the cookie session (if one is sent) and clears the cookie.
#[utoipa::path(
    post,
    path = "/api/v1/admin/logout",
    operation_id = "adminLogout",
    tag = "admin",
    security(("adminSession" = ["viewer"]), ("adminToken" = ["viewer"])),
    params(CsrfToken),
    responses(
        (status = 204, description = "Signed out.",
         headers(("Set-Cookie" = String, description = "`messo_admin=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`."))),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    ),
)]
async fn logout(
    State(st): State<AdminState>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    st.actor(&headers, &method, Role::Viewer).await?;
    if let Some(c) = cookie_value(&headers) {
        st.inner
            .store
            .admin()
            .end_admin_session(&sha256_hex(&c))
            .await?;
    }
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("messo_admin=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    Ok(res)
}

/// Who is signed in
#[utoipa::path(
    get,
    path = "/api/v1/admin/me",
    operation_id = "adminMe",
    tag = "admin",
    security(("adminSession" = ["viewer"]), ("adminToken" = ["viewer"])),
    responses(
        (status = 200, description = "The caller.", body = MeBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    ),
)]
async fn me(State(st): State<AdminState>, method: Method, headers: HeaderMap) -> Response {
    match st.actor(&headers, &method, Role::Viewer).await {
        Ok(a) => json_response(
            StatusCode::OK,
            MeBody {
                username: &a.user.username,
                role: a.user.role,
                csrf: a.csrf.as_deref(),
                four_eyes: st.inner.config.four_eyes,
            },
        ),
        Err(p) => p.into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Templates.

/// One template of the catalog.
#[derive(Serialize, ToSchema)]
#[schema(as = TemplateSummary)]
struct Summary<'a> {
    #[schema(inline, value_type = AudienceName)]
    audience: Audience,
    kind: &'a str,
    #[schema(inline, value_type = super::openapi::LangParam)]
    lang: &'static str,
    description: &'a str,
    /// 0 for the bundled default.
    live_version: i64,
    #[schema(format = DateTime, required = true)]
    live_since: Option<String>,
    #[schema(required = true)]
    live_by: Option<String>,
    /// How many versions are proposed.
    proposed: usize,
    #[schema(inline, value_type = Vec<TemplateWrites>)]
    channels: Vec<Channel>,
}

// The channels a template writes words for.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // described, never built
enum TemplateWrites {
    Email,
    Sms,
    Io,
}

// The channels a template writes for.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // described, never built
enum TemplateChannel {
    Email,
    Sms,
}

/// List the templates
#[utoipa::path(
    get,
    path = "/api/v1/admin/templates",
    operation_id = "listTemplates",
    tag = "templates",
    security(("adminSession" = ["viewer"]), ("adminToken" = ["viewer"])),
    responses(
        (status = 200, description = "Every template of the catalog.", body = Vec<Summary>),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    ),
)]
async fn list_templates(
    State(st): State<AdminState>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    st.actor(&headers, &method, Role::Viewer).await?;
    let t = &st.inner.templates;
    let mut out = Vec::new();
    for (key, d) in &t.catalog().defaults {
        let versions = st.inner.store.templates().template_versions(key).await?;
        let live = versions.iter().find(|v| v.state == "live");
        let mut channels = vec![Channel::Email];
        if d.content.sms.is_some() {
            channels.push(Channel::Sms);
        }
        if d.content.has_io() {
            channels.push(Channel::Io);
        }
        out.push(Summary {
            audience: key.audience,
            kind: &key.kind,
            lang: key.lang_str(),
            description: &d.description,
            live_version: live.map_or(0, |v| v.version),
            live_since: live.and_then(|v| v.published_at).map(|t| st.rfc(t)),
            live_by: live.and_then(|v| v.published_by.clone()),
            proposed: versions.iter().filter(|v| v.state == "proposed").count(),
            channels,
        });
    }
    Ok(json_response(StatusCode::OK, out))
}

/// A template's key in a path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct TemplatePath {
    /// Unknown values answer 404.
    #[param(inline, value_type = AudienceName)]
    audience: String,
    /// The notice kind (e.g. `violazione`); a kind without a bundled template answers 404.
    kind: String,
    /// Unknown values answer 404.
    #[param(inline, value_type = super::openapi::LangParam)]
    lang: String,
}

type KeyPath = Path<TemplatePath>;

/// A version of a template in a path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct VersionPath {
    /// Unknown values answer 404.
    #[param(inline, value_type = AudienceName)]
    audience: String,
    /// The notice kind (e.g. `violazione`); a kind without a bundled template answers 404.
    kind: String,
    /// Unknown values answer 404.
    #[param(inline, value_type = super::openapi::LangParam)]
    lang: String,
    /// A proposed version.
    version: i64,
}

// Who a template is for.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // described, never built
enum AudienceName {
    Cittadino,
    Ufficio,
    /// Spoken words: the telephone prompts and the notices an automated call speaks.
    Telefono,
}

/// The bundled default as version 0.
/// A stored version as the daemon uses it: one stored before its notice had IO parts has the
/// bundled default's ([`templates::with_default_io`]).
fn with_io(t: &Templates, key: &Key, mut v: TemplateVersion) -> TemplateVersion {
    if let Some(d) = t.catalog().defaults.get(key) {
        v.content = templates::with_default_io(&v.content, &d.content);
    }
    v
}

fn default_version(content: &Content) -> TemplateVersion {
    TemplateVersion {
        version: 0,
        state: "live".to_owned(),
        content: content.clone(),
        note: "testo predefinito".to_owned(),
        author: "messo".to_owned(),
        created_at: Timestamp(0),
        published_by: None,
        published_at: None,
        restores: None,
    }
}

/// A template with what an editor needs to change it.
#[derive(Serialize, ToSchema)]
#[schema(as = TemplateDetail)]
struct Detail<'a> {
    #[schema(inline, value_type = AudienceName)]
    audience: Audience,
    kind: &'a str,
    #[schema(inline, value_type = super::openapi::LangParam)]
    lang: &'static str,
    description: &'a str,
    live: VersionBody,
    proposed: Vec<VersionBody>,
    /// Top-level names of the samples and the globals (`comune`, `lang`, `channel`, `urp.*`).
    variables: Vec<String>,
    helpers: &'static [&'static str],
    samples: &'a [Value],
    sms_max_parts: u32,
    four_eyes: bool,
}

/// Read a template
///
/// The live version (the bundled default as version 0 when none was published), the proposed
/// ones, the variables, helpers and samples available.
#[utoipa::path(
    get,
    path = "/api/v1/admin/templates/{audience}/{kind}/{lang}",
    operation_id = "getTemplate",
    tag = "templates",
    security(("adminSession" = ["viewer"]), ("adminToken" = ["viewer"])),
    params(TemplatePath),
    responses(
        (status = 200, description = "The template.", body = Detail),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
    ),
)]
async fn get_template(
    State(st): State<AdminState>,
    Path(p): KeyPath,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    st.actor(&headers, &method, Role::Viewer).await?;
    let t = &st.inner.templates;
    let key = key_of(&p.audience, &p.kind, &p.lang, t)?;
    let d = &t.catalog().defaults[&key];
    let versions: Vec<TemplateVersion> = st
        .inner
        .store
        .templates()
        .template_versions(&key)
        .await?
        .into_iter()
        .map(|v| with_io(t, &key, v))
        .collect();
    let live = versions
        .iter()
        .find(|v| v.state == "live")
        .cloned()
        .unwrap_or_else(|| default_version(&d.content));
    let proposed: Vec<VersionBody> = versions
        .iter()
        .filter(|v| v.state == "proposed")
        .map(|v| st.version_json(v))
        .collect();
    let mut variables: Vec<String> = d
        .samples
        .iter()
        .flat_map(|s| s.as_object().into_iter().flat_map(|m| m.keys().cloned()))
        .chain(
            [
                "comune",
                "lang",
                "channel",
                "urp.phone",
                "urp.email",
                "urp.hours",
            ]
            .map(String::from),
        )
        .collect();
    variables.sort();
    variables.dedup();
    Ok(json_response(
        StatusCode::OK,
        Detail {
            audience: key.audience,
            kind: &key.kind,
            lang: key.lang_str(),
            description: &d.description,
            live: st.version_json(&live),
            proposed,
            variables,
            helpers: &templates::helpers::NAMES,
            samples: &d.samples,
            sms_max_parts: t.settings().max_parts(&key.kind),
            four_eyes: st.inner.config.four_eyes,
        },
    ))
}

/// The parts of a template (handlebars).
#[derive(Deserialize, ToSchema)]
#[schema(as = TemplateContent)]
struct ContentBody {
    subject: String,
    text: String,
    /// Required exactly when the bundled default has an HTML part.
    #[serde(default)]
    html: Option<String>,
    /// Required exactly when the bundled default has an SMS part.
    #[serde(default)]
    sms: Option<String>,
    /// The subject of the message in the app IO (plain text, 10 to 120 characters once
    /// rendered), for a notice the app IO carries, with `io_markdown`. An edit without either
    /// keeps the live version's IO parts.
    #[serde(default)]
    io_subject: Option<String>,
    /// The body of the message in the app IO (the app's Markdown subset, 80 to 10,000
    /// characters once rendered). Required exactly with `io_subject`.
    #[serde(default)]
    io_markdown: Option<String>,
}

/// A template's content, with what the operation needs besides: `note` is kept with a saved
/// version (at most 500 characters); `sample` (index, default 0) or `ticket` (a real ticket's
/// number) choose the data a preview renders. Other fields are ignored.
#[derive(Deserialize, ToSchema)]
#[schema(as = TemplateEdit)]
struct EditBody {
    #[serde(flatten)]
    content: ContentBody,
    #[serde(default)]
    #[schema(max_length = 500)]
    note: Option<String>,
    #[serde(default)]
    sample: Option<usize>,
    #[serde(default)]
    ticket: Option<String>,
}

impl EditBody {
    /// The edit's content. An edit that sends neither IO part (a client written before
    /// them) keeps the live version's: it changes the other parts only.
    fn content_for(&self, t: &Templates, key: &Key) -> Content {
        match t.live(key) {
            Some((_, live)) => templates::with_default_io(&self.content(), &live),
            None => self.content(),
        }
    }

    fn content(&self) -> Content {
        let c = &self.content;
        Content {
            subject: c.subject.clone(),
            text: c.text.clone(),
            html: c.html.clone(),
            sms: c.sms.clone(),
            io_subject: c.io_subject.clone(),
            io_markdown: c.io_markdown.clone(),
        }
    }
}

/// A test message rendered from this content and queued to one address; its subject is
/// prefixed `[PROVA]`.
#[derive(Deserialize, ToSchema)]
#[schema(as = TemplateTestSend)]
struct TestSendBody {
    #[serde(flatten)]
    edit: EditBody,
    /// `sms` is refused for office (`ufficio`) templates.
    #[serde(default)]
    #[schema(inline, value_type = Option<TemplateChannel>, default = "email")]
    channel: Option<String>,
    /// An e-mail address or a phone number, according to `channel`.
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    to: Option<String>,
}

/// The payload a preview renders: a sample, or a real ticket's latest notice of this kind (or
/// its fields over the first sample).
async fn preview_payload(st: &AdminState, key: &Key, body: &EditBody) -> Result<Value, Problem> {
    let d = &st.inner.templates.catalog().defaults[key];
    if let Some(number) = body.ticket.as_deref().filter(|n| !n.trim().is_empty()) {
        let base = d.samples.first().cloned().unwrap_or(Value::Null);
        return st
            .inner
            .store
            .templates()
            .preview_payload(number.trim(), &key.kind, base, st.inner.tz)
            .await?
            .ok_or_else(|| Problem::not_found(format!("ticket {number} not found")));
    }
    let i = body.sample.unwrap_or(0);
    d.samples
        .get(i)
        .cloned()
        .ok_or_else(|| bad_request(format!("sample: there are {} samples", d.samples.len())))
}

/// Preview an edit
///
/// Renders the content with a sample (`sample`, default 0) or a real ticket's data (`ticket`).
/// The body is read as JSON whatever its Content-Type.
#[utoipa::path(
    post,
    path = "/api/v1/admin/templates/{audience}/{kind}/{lang}/preview",
    operation_id = "previewTemplate",
    tag = "templates",
    security(("adminSession" = ["editor"]), ("adminToken" = ["editor"])),
    params(TemplatePath, CsrfToken),
    request_body = EditBody,
    responses(
        (status = 200, description = "The rendered message.", body = schema::Preview),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = TemplateRefused),
        (status = 500, response = Internal),
    ),
)]
async fn preview(
    State(st): State<AdminState>,
    Path(p): KeyPath,
    method: Method,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Problem> {
    st.actor(&headers, &method, Role::Editor).await?;
    let key = key_of(&p.audience, &p.kind, &p.lang, &st.inner.templates)?;
    let body: EditBody = parse_body(&bytes)?;
    let payload = preview_payload(&st, &key, &body).await?;
    Ok(
        match st.inner.templates.preview(
            &key,
            &body.content_for(&st.inner.templates, &key),
            &payload,
        ) {
            Ok(p) => json_response(StatusCode::OK, json!(p)),
            Err(problems) => refused(&problems),
        },
    )
}

/// The verdict on an edit.
#[derive(Serialize, ToSchema)]
#[schema(as = Validation)]
struct Verdict {
    ok: bool,
    #[schema(value_type = Vec<schema::TemplateError>)]
    errors: Vec<templates::Problem>,
    /// One per sample when `ok`; empty otherwise.
    #[schema(value_type = Vec<schema::Preview>)]
    previews: Vec<templates::Preview>,
}

/// Check an edit
///
/// Checks the content against every sample without storing anything; problems are in the 200
/// answer.
#[utoipa::path(
    post,
    path = "/api/v1/admin/templates/{audience}/{kind}/{lang}/validate",
    operation_id = "validateTemplate",
    tag = "templates",
    security(("adminSession" = ["editor"]), ("adminToken" = ["editor"])),
    params(TemplatePath, CsrfToken),
    request_body = EditBody,
    responses(
        (status = 200, description = "Whether the edit could go live, with the problems or the \
                                      previews.", body = Verdict),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
    ),
)]
async fn validate(
    State(st): State<AdminState>,
    Path(p): KeyPath,
    method: Method,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Problem> {
    st.actor(&headers, &method, Role::Editor).await?;
    let key = key_of(&p.audience, &p.kind, &p.lang, &st.inner.templates)?;
    let body: EditBody = parse_body(&bytes)?;
    let verdict = match st
        .inner
        .templates
        .check(&key, &body.content_for(&st.inner.templates, &key))
    {
        Ok(previews) => Verdict {
            ok: true,
            errors: Vec::new(),
            previews,
        },
        Err(problems) => Verdict {
            ok: false,
            errors: problems,
            previews: Vec::new(),
        },
    };
    Ok(json_response(StatusCode::OK, verdict))
}

fn note_of(body: &EditBody) -> Result<String, Problem> {
    let note = body.note.clone().unwrap_or_default();
    if note.chars().count() > 500 {
        return Err(bad_request("note: at most 500 characters"));
    }
    Ok(note.trim().to_owned())
}

/// Save an edit as a proposed version
///
/// Checked first: a refused edit stores nothing. Audited.
#[utoipa::path(
    post,
    path = "/api/v1/admin/templates/{audience}/{kind}/{lang}/versions",
    operation_id = "proposeTemplateVersion",
    tag = "templates",
    security(("adminSession" = ["editor"]), ("adminToken" = ["editor"])),
    params(TemplatePath, CsrfToken),
    request_body = EditBody,
    responses(
        (status = 201, description = "The new proposed version.", body = VersionBody),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = TemplateRefused),
        (status = 500, response = Internal),
    ),
)]
async fn save(
    State(st): State<AdminState>,
    Path(p): KeyPath,
    method: Method,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Problem> {
    let actor = st.actor(&headers, &method, Role::Editor).await?;
    let key = key_of(&p.audience, &p.kind, &p.lang, &st.inner.templates)?;
    let body: EditBody = parse_body(&bytes)?;
    let content = body.content_for(&st.inner.templates, &key);
    if let Err(problems) = st.inner.templates.check(&key, &content) {
        return Ok(refused(&problems));
    }
    let note = note_of(&body)?;
    let v = st
        .inner
        .store
        .templates()
        .add_template_version(
            &key,
            &content,
            &note,
            &actor.user.username,
            "proposed",
            None,
            (st.inner.clock)(),
            &json!({"note": note}),
        )
        .await?;
    tracing::info!(template = %key, version = v.version, "template version proposed");
    Ok(json_response(StatusCode::CREATED, st.version_json(&v)))
}

/// Why a user may not make a version live.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishRefused {
    /// Four eyes: only an administrator publishes.
    #[error("con la regola dei quattro occhi pubblica solo un amministratore")]
    NotAnAdmin,
    /// Four eyes: not the version's own author.
    #[error(
        "con la regola dei quattro occhi la versione scritta da {author} va pubblicata da un altro amministratore"
    )]
    OwnVersion { author: String },
    #[error("serve il ruolo editor o admin")]
    NotAnEditor,
}

/// Whether `actor` may make a version written by `author` live.
pub fn may_publish(four_eyes: bool, actor: &AdminUser, author: &str) -> Result<(), PublishRefused> {
    if four_eyes {
        if actor.role < Role::Admin {
            return Err(PublishRefused::NotAnAdmin);
        }
        if actor.username == author {
            return Err(PublishRefused::OwnVersion {
                author: author.to_owned(),
            });
        }
    } else if actor.role < Role::Editor {
        return Err(PublishRefused::NotAnEditor);
    }
    Ok(())
}

/// Publish a proposed version
///
/// Makes a proposed version live, checked again first. Needs the editor role; with
/// `admin.four_eyes`, an administrator other than the version's author. No body is read.
#[utoipa::path(
    post,
    path = "/api/v1/admin/templates/{audience}/{kind}/{lang}/versions/{version}/publish",
    operation_id = "publishTemplateVersion",
    tag = "templates",
    security(("adminSession" = ["editor"]), ("adminToken" = ["editor"])),
    params(VersionPath, CsrfToken),
    responses(
        (status = 200, description = "The version, now live.", body = VersionBody),
        (status = 400, description = "`version` is not an integer (a plain-text answer of the \
                                      router, not a problem document).",
         body = String, content_type = "text/plain"),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = TemplateRefused),
        (status = 500, response = Internal),
    ),
)]
async fn publish(
    State(st): State<AdminState>,
    Path(p): Path<VersionPath>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let actor = st.actor(&headers, &method, Role::Editor).await?;
    let t = &st.inner.templates;
    let key = key_of(&p.audience, &p.kind, &p.lang, t)?;
    let version = p.version;
    let v = st
        .inner
        .store
        .templates()
        .template_version(&key, version)
        .await?
        .filter(|v| v.state == "proposed")
        .map(|v| with_io(t, &key, v))
        .ok_or_else(|| Problem::not_found(format!("{key} has no proposed version {version}")))?;
    may_publish(st.inner.config.four_eyes, &actor.user, &v.author)
        .map_err(|e| forbidden(e.to_string()))?;
    // Checked again: the samples or the budget may have changed since it was proposed.
    if let Err(problems) = t.check(&key, &v.content) {
        return Ok(refused(&problems));
    }
    let v = st
        .inner
        .store
        .templates()
        .publish_template_version(&key, version, &actor.user.username, (st.inner.clock)())
        .await?
        .ok_or_else(|| Problem::not_found(format!("{key} has no proposed version {version}")))?;
    install(&st, &key, &v);
    Ok(json_response(StatusCode::OK, st.version_json(&v)))
}

/// Makes a version just made live in the store live in the daemon; it passed the gate moments
/// ago, and `Templates::install` runs the gate once more.
fn install(st: &AdminState, key: &Key, v: &TemplateVersion) {
    let refused = st.inner.templates.install(&[Live {
        key: key.clone(),
        version: v.version,
        content: v.content.clone(),
    }]);
    if refused.is_empty() {
        tracing::info!(template = %key, version = v.version, "template version live");
    }
    for (key, why) in refused {
        tracing::error!(template = %key, version = v.version, reason = %why,
            "a published version fails the template gate; the version before stays live");
    }
}

/// Which version to make live again.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Rollback)]
struct RollbackBody {
    /// The version to make live again as a new version; 0 is the bundled default. An unknown
    /// version is 404.
    version: i64,
    #[serde(default)]
    note: Option<String>,
}

/// Whether a rollback (by an admin: the route asks for the role) may make version `target` of
/// a template live again.
///
/// - Only words that were live before may be restored: version 0 (the bundled default) or a
///   version with a publication. A proposal is never made live by a rollback: it is published,
///   under the publish rule.
/// - With four eyes, only words two people approved: the bundled default (reviewed in the
///   repository before it shipped), or a version whose publisher is not its author. A rollback
///   restores exactly those words, so it needs no second person again; a version that its own
///   author published (when four eyes was off, or by the old rollback) must be proposed again.
///   `origin` is the version the target restores when the target is itself a rollback.
pub fn may_roll_back(
    four_eyes: bool,
    target: &TemplateVersion,
    origin: Option<&TemplateVersion>,
) -> Result<(), (StatusCode, String)> {
    if target.version != 0 && target.published_at.is_none() {
        return Err((
            StatusCode::CONFLICT,
            format!(
                "la versione {} non è mai stata in uso: si ripristina solo una versione già \
                 pubblicata; una proposta va pubblicata{}",
                target.version,
                if four_eyes {
                    " da un altro amministratore (quattro occhi)"
                } else {
                    ""
                }
            ),
        ));
    }
    if !four_eyes {
        return Ok(());
    }
    let words = origin.unwrap_or(target);
    let reviewed = words.version == 0
        || words
            .published_by
            .as_deref()
            .is_some_and(|p| p != words.author);
    if reviewed {
        Ok(())
    } else {
        Err((
            StatusCode::FORBIDDEN,
            format!(
                "con la regola dei quattro occhi si ripristina solo un testo approvato da due \
                 persone: la versione {} è stata pubblicata dalla sua stessa autrice o autore \
                 ({}); la si proponga di nuovo perché un altro amministratore la pubblichi",
                words.version, words.author
            ),
        ))
    }
}

/// Make an earlier version live again
///
/// Stores the content of `version` (0: the bundled default) as a new live version, checked
/// first. Only a version that was live before may be restored (409 otherwise: a proposal is
/// published instead); with four eyes, only words two people approved: version 0 or a version
/// whose publisher is not its author (403 otherwise). The new version names the one it restores
/// in `restores`.
#[utoipa::path(
    post,
    path = "/api/v1/admin/templates/{audience}/{kind}/{lang}/rollback",
    operation_id = "rollbackTemplate",
    tag = "templates",
    security(("adminSession" = ["admin"]), ("adminToken" = ["admin"])),
    params(TemplatePath, CsrfToken),
    request_body = RollbackBody,
    responses(
        (status = 200, description = "The new live version.", body = VersionBody),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = TemplateRefused),
        (status = 500, response = Internal),
    ),
)]
async fn rollback(
    State(st): State<AdminState>,
    Path(p): KeyPath,
    method: Method,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Problem> {
    let actor = st.actor(&headers, &method, Role::Admin).await?;
    let t = &st.inner.templates;
    let key = key_of(&p.audience, &p.kind, &p.lang, t)?;
    let body: RollbackBody = parse_body(&bytes)?;
    let store = &st.inner.store;
    let target = if body.version == 0 {
        default_version(&t.catalog().defaults[&key].content)
    } else {
        store
            .templates()
            .template_version(&key, body.version)
            .await?
            .map(|v| with_io(t, &key, v))
            .ok_or_else(|| Problem::not_found(format!("{key} has no version {}", body.version)))?
    };
    // The words a rollback of a rollback restores are those of the first version.
    let origin = match target.restores {
        Some(0) => Some(default_version(&t.catalog().defaults[&key].content)),
        Some(v) => Some(
            store
                .templates()
                .template_version(&key, v)
                .await?
                .ok_or_else(|| {
                    Problem::not_found(format!(
                        "{key} has no version {v} (restored by {})",
                        target.version
                    ))
                })?,
        ),
        None => None,
    };
    if let Err((status, why)) = may_roll_back(st.inner.config.four_eyes, &target, origin.as_ref()) {
        let kind = if status == StatusCode::CONFLICT {
            "never-live"
        } else {
            "forbidden"
        };
        return Err(Problem::new(status, kind, "Not allowed", why));
    }
    if let Err(problems) = t.check(&key, &target.content) {
        return Ok(refused(&problems));
    }
    let restores = origin.as_ref().map_or(target.version, |o| o.version);
    let note = body
        .note
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| format!("ripristino della versione {}", body.version));
    let v = store
        .templates()
        .add_template_version(
            &key,
            &target.content,
            &note,
            &actor.user.username,
            "live",
            Some(restores),
            (st.inner.clock)(),
            &json!({"rollback_to": body.version, "restores": restores}),
        )
        .await?;
    install(&st, &key, &v);
    Ok(json_response(StatusCode::OK, st.version_json(&v)))
}

/// A unified diff of two versions, part by part.
pub fn diff(old: &Content, new: &Content) -> String {
    let mut out = String::new();
    for part in templates::Part::ALL {
        let pick = |c: &Content| part.of(c).map(str::to_owned);
        let (a, b) = (pick(old).unwrap_or_default(), pick(new).unwrap_or_default());
        if a == b {
            continue;
        }
        let d = similar::TextDiff::from_lines(&a, &b);
        let text = d
            .unified_diff()
            .context_radius(2)
            .header(
                &format!("{} (prima)", part.as_str()),
                &format!("{} (dopo)", part.as_str()),
            )
            .to_string();
        out.push_str(&text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// One version in a template's history.
#[derive(Serialize, ToSchema)]
#[schema(as = TemplateHistoryEntry)]
struct HistoryEntry {
    #[serde(flatten)]
    version: VersionBody,
    /// Unified diff, part by part, from the version before (empty for version 0).
    diff: String,
}

/// A template's versions, newest first
///
/// Every stored version with its diff from the one before, down to the bundled default
/// (version 0).
#[utoipa::path(
    get,
    path = "/api/v1/admin/templates/{audience}/{kind}/{lang}/history",
    operation_id = "templateHistory",
    tag = "templates",
    security(("adminSession" = ["viewer"]), ("adminToken" = ["viewer"])),
    params(TemplatePath),
    responses(
        (status = 200, description = "The versions.", body = Vec<HistoryEntry>),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
    ),
)]
async fn history(
    State(st): State<AdminState>,
    Path(p): KeyPath,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    st.actor(&headers, &method, Role::Viewer).await?;
    let t = &st.inner.templates;
    let key = key_of(&p.audience, &p.kind, &p.lang, t)?;
    let mut versions: Vec<TemplateVersion> = st
        .inner
        .store
        .templates()
        .template_versions(&key)
        .await?
        .into_iter()
        .map(|v| with_io(t, &key, v))
        .collect();
    versions.reverse();
    let default = default_version(&t.catalog().defaults[&key].content);
    let mut out = Vec::with_capacity(versions.len() + 1);
    let mut prev = default.content.clone();
    let mut d0 = st.version_json(&default);
    d0.state = if versions.iter().any(|v| v.state == "live") {
        "retired"
    } else {
        "live"
    }
    .to_owned();
    out.push(HistoryEntry {
        version: d0,
        diff: String::new(),
    });
    for v in &versions {
        out.push(HistoryEntry {
            version: st.version_json(v),
            diff: diff(&prev, &v.content),
        });
        prev = v.content.clone();
    }
    out.reverse();
    Ok(json_response(StatusCode::OK, out))
}

/// A test message queued.
#[derive(Serialize, ToSchema)]
#[schema(as = TestSendQueued)]
struct Queued {
    outbox_id: i64,
}

// Queues the edit, rendered, to a real address. `Templates::preview` runs the whole gate of a
// save first (and checks the HTML rendered for this payload): a refused edit is answered 422
// and nothing is queued.
/// Send a test message
///
/// Renders the content (as a preview does) and queues one message to `to` by `channel`.
#[utoipa::path(
    post,
    path = "/api/v1/admin/templates/{audience}/{kind}/{lang}/test-send",
    operation_id = "testSendTemplate",
    tag = "templates",
    security(("adminSession" = ["editor"]), ("adminToken" = ["editor"])),
    params(TemplatePath, CsrfToken),
    request_body = TestSendBody,
    responses(
        (status = 202, description = "Queued.", body = Queued),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = TemplateRefused),
        (status = 500, response = Internal),
    ),
)]
async fn test_send(
    State(st): State<AdminState>,
    Path(p): KeyPath,
    method: Method,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Problem> {
    let actor = st.actor(&headers, &method, Role::Editor).await?;
    let t = &st.inner.templates;
    let key = key_of(&p.audience, &p.kind, &p.lang, t)?;
    let body: TestSendBody = parse_body(&bytes)?;
    let channel = match body.channel.as_deref() {
        None => Channel::Email,
        Some(name) => match Channel::parse(name) {
            Some(c @ (Channel::Email | Channel::Sms)) => c,
            _ => {
                return Err(bad_request(format!(
                    "channel: {name:?} is not email or sms"
                )));
            }
        },
    };
    let to = body.to.clone().unwrap_or_default();
    let address = Address::parse(channel, to.trim()).map_err(|e| match e {
        AddressError::Email(_) => bad_request(format!("to: {e}")),
        AddressError::Phone(_) => bad_request("to: not a phone number"),
        AddressError::Fiscal(_) => bad_request("to: not a codice fiscale"),
    })?;
    if channel == Channel::Sms && key.audience == Audience::Ufficio {
        return Err(bad_request("channel: office alerts have no SMS"));
    }
    let payload = preview_payload(&st, &key, &body.edit).await?;
    let p = match t.preview(&key, &body.edit.content_for(t, &key), &payload) {
        Ok(p) => p,
        Err(problems) => return Ok(refused(&problems)),
    };
    let rendered = templates::RenderedMessage {
        subject: format!("[PROVA] {}", p.subject),
        text: if channel == Channel::Sms {
            p.sms.map(|s| s.text).unwrap_or_default()
        } else {
            p.text
        },
        html: if channel == Channel::Sms {
            None
        } else {
            p.html
        },
        template: key.to_string(),
        version: -1,
        attachments: Vec::new(),
    };
    let id = st
        .inner
        .store
        .outbox()
        .queue_test_message(
            channel,
            &address,
            &rendered,
            &actor.user.username,
            (st.inner.clock)(),
        )
        .await?;
    st.inner.wake.notify_one();
    Ok(json_response(
        StatusCode::ACCEPTED,
        Queued { outbox_id: id },
    ))
}

// ---------------------------------------------------------------------------------------------
// Tickets at risk, audit, users.

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RevokeLinks)]
struct RevokeBody {
    /// Kept in the audit log.
    // e.g. "il cittadino ha inoltrato il link per errore".
    #[schema(min_length = 1)]
    reason: String,
}

/// The links of a ticket, turned off.
#[derive(Serialize, ToSchema)]
#[schema(as = LinksRevoked)]
struct Revoked {
    number: String,
    #[schema(format = DateTime)]
    links_revoked_at: String,
}

/// Turn off a ticket's status links
///
/// Every link to the ticket issued until now stops opening (410); the next message to the
/// citizen carries a new one. Audited with the reason.
#[utoipa::path(
    post,
    path = "/api/v1/admin/tickets/{number}/revoke-links",
    operation_id = "revokeStatusLinks",
    tag = "admin",
    security(("adminSession" = ["editor"]), ("adminToken" = ["editor"])),
    params(TicketNumber, CsrfToken),
    request_body = RevokeBody,
    responses(
        (status = 200, description = "Revoked.", body = Revoked),
        (status = 400, response = MalformedJson),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
    ),
)]
async fn revoke_links(
    State(st): State<AdminState>,
    Path(number): Path<String>,
    method: Method,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Problem> {
    let actor = st.actor(&headers, &method, Role::Editor).await?;
    let body: RevokeBody = parse_body(&bytes)?;
    if body.reason.trim().is_empty() {
        return Err(Problem::invalid(vec![crate::ticket::FieldError {
            field: "reason".into(),
            message: "say why the links are revoked".into(),
        }]));
    }
    let now = (st.inner.clock)();
    let at = st
        .inner
        .store
        .portal()
        .revoke_links(&number, now, &actor.user.username, body.reason.trim())
        .await?
        .ok_or_else(|| Problem::not_found(format!("ticket {number} not found")))?;
    Ok(json_response(
        StatusCode::OK,
        Revoked {
            links_revoked_at: st.rfc(at),
            number,
        },
    ))
}

// The states of a ticket at risk.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // described, never built
enum RiskState {
    Warning,
    Breached,
    Paused,
}

/// An open ticket the office should look at (at most 500, breached first, then warning, then
/// paused).
#[derive(Serialize, ToSchema)]
#[schema(as = AtRisk)]
struct Risk<'a> {
    number: &'a str,
    subject: &'a str,
    office: &'a str,
    #[schema(value_type = schema::Priority)]
    priority: &'a str,
    #[schema(inline, value_type = RiskState)]
    state: &'a str,
    #[schema(format = DateTime, required = true)]
    due_at: Option<String>,
    /// Seconds from now to `due_at` (negative once past); null when paused or without a due
    /// instant.
    #[schema(required = true)]
    remaining_s: Option<i64>,
    #[schema(format = DateTime, required = true)]
    paused_since: Option<String>,
}

/// Open tickets in warning, breached or paused
#[utoipa::path(
    get,
    path = "/api/v1/admin/tickets/at-risk",
    operation_id = "ticketsAtRisk",
    tag = "admin",
    security(("adminSession" = ["viewer"]), ("adminToken" = ["viewer"])),
    responses(
        (status = 200, description = "At most 500 tickets.", body = Vec<Risk>),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    ),
)]
async fn at_risk(
    State(st): State<AdminState>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    st.actor(&headers, &method, Role::Viewer).await?;
    let now = (st.inner.clock)();
    let rows = st.inner.store.monitor().tickets_at_risk(500).await?;
    let out: Vec<Risk> = rows
        .iter()
        .map(|t| Risk {
            number: &t.number,
            subject: &t.subject,
            office: &t.office,
            priority: &t.priority,
            state: &t.state,
            due_at: t.due_at.map(|d| st.rfc(d)),
            remaining_s: t
                .due_at
                .filter(|_| t.state != "paused")
                .map(|d| d.0 - now.0),
            paused_since: t.paused_since.map(|d| st.rfc(d)),
        })
        .collect();
    Ok(json_response(StatusCode::OK, out))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// How many records; clamped to 1–1000.
    #[param(default = 100)]
    limit: Option<i64>,
}

/// One record of the audit log.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditRecord)]
struct AuditEntry<'a> {
    #[schema(format = DateTime)]
    at: String,
    actor: &'a str,
    #[schema(examples("login.failed", "user.set"))]
    action: &'a str,
    object: &'a str,
    detail: &'a Value,
}

/// The audit log
#[utoipa::path(
    get,
    path = "/api/v1/admin/audit",
    operation_id = "auditLog",
    tag = "admin",
    security(("adminSession" = ["admin"]), ("adminToken" = ["admin"])),
    params(AuditQuery),
    responses(
        (status = 200, description = "The records.", body = Vec<AuditEntry>),
        (status = 400, description = "`limit` is not an integer (a plain-text answer of the \
                                      router, not a problem document).",
         body = String, content_type = "text/plain"),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    ),
)]
async fn audit(
    State(st): State<AdminState>,
    method: Method,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Result<Response, Problem> {
    st.actor(&headers, &method, Role::Admin).await?;
    let rows = st
        .inner
        .store
        .admin()
        .audit_log(q.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    let out: Vec<AuditEntry> = rows
        .iter()
        .map(|r| AuditEntry {
            at: st.rfc(r.at),
            actor: &r.actor,
            action: &r.action,
            object: &r.object,
            detail: &r.detail,
        })
        .collect();
    Ok(json_response(StatusCode::OK, out))
}

/// List the console users
#[utoipa::path(
    get,
    path = "/api/v1/admin/users",
    operation_id = "listUsers",
    tag = "admin",
    security(("adminSession" = ["admin"]), ("adminToken" = ["admin"])),
    responses(
        (status = 200, description = "The users.", body = Vec<UserView>),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    ),
)]
async fn users(
    State(st): State<AdminState>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    st.actor(&headers, &method, Role::Admin).await?;
    let users = st.inner.store.admin().admin_users().await?;
    let out: Vec<UserView> = users.iter().map(|u| user_json(&st, u)).collect();
    Ok(json_response(StatusCode::OK, out))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewUser)]
struct UserBody {
    /// After trimming and lower-casing: 3–64 of a-z 0-9 . _ -
    username: String,
    #[schema(value_type = RoleName)]
    role: String,
    #[schema(min_length = 12, max_length = 1024)]
    password: String,
}

/// A user name: 3–64 lower-case letters, digits, dots, dashes or underscores.
pub fn valid_username(name: &str) -> bool {
    (3..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// A new password: 12 characters at least, 1024 bytes at most.
pub fn password_problem(password: &str) -> Option<&'static str> {
    if password.chars().count() < 12 {
        Some("password: at least 12 characters")
    } else if password.len() > MAX_PASSWORD_BYTES {
        Some("password: at most 1024 bytes")
    } else {
        None
    }
}

/// A console user.
#[derive(Serialize, ToSchema)]
#[schema(as = User)]
struct UserView<'a> {
    username: &'a str,
    #[schema(value_type = RoleName)]
    role: Role,
    disabled: bool,
    #[schema(format = DateTime)]
    created_at: String,
}

fn user_json<'a>(st: &AdminState, u: &'a AdminUser) -> UserView<'a> {
    UserView {
        username: &u.username,
        role: u.role,
        disabled: u.disabled,
        created_at: st.rfc(u.created_at),
    }
}

/// Add a console user
///
/// Creates the user. A name that exists — enabled or disabled — is 409: a change of password,
/// role or state goes through `PATCH /api/v1/admin/users/{name}`. Audited.
#[utoipa::path(
    post,
    path = "/api/v1/admin/users",
    operation_id = "addUser",
    tag = "admin",
    security(("adminSession" = ["admin"]), ("adminToken" = ["admin"])),
    params(CsrfToken),
    request_body = UserBody,
    responses(
        (status = 201, description = "The user.", body = UserView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 500, response = Internal),
        (status = 503, response = Busy),
    ),
)]
async fn add_user(
    State(st): State<AdminState>,
    method: Method,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Problem> {
    let actor = st.actor(&headers, &method, Role::Admin).await?;
    let body: UserBody = parse_body(&bytes)?;
    let username = body.username.trim().to_lowercase();
    if !valid_username(&username) {
        return Err(bad_request("username: 3–64 characters among a-z 0-9 . _ -"));
    }
    let role: Role = body.role.parse().map_err(bad_request)?;
    if let Some(p) = password_problem(&body.password) {
        return Err(bad_request(p));
    }
    if st
        .inner
        .store
        .admin()
        .admin_user(&username)
        .await?
        .is_some()
    {
        return Err(AdminError::Conflict(format!(
            "user {username} already exists (it may be disabled): change it with \
             PATCH /api/v1/admin/users/{username}"
        ))
        .into());
    }
    let hash = super::auth::hash(body.password).await?;
    let u = st
        .inner
        .store
        .admin()
        .create_admin_user(
            &username,
            role,
            &hash,
            &actor.user.username,
            (st.inner.clock)(),
        )
        .await?;
    Ok(json_response(StatusCode::CREATED, user_json(&st, &u)))
}

/// What changes; at least one of the three.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UserChange, min_properties = 1)]
struct ChangeBody {
    #[serde(default)]
    #[schema(value_type = RoleName, nullable = false)]
    role: Option<String>,
    #[serde(default)]
    #[schema(min_length = 12, max_length = 1024, nullable = false)]
    password: Option<String>,
    /// true disables the user; false enables her again.
    #[serde(default)]
    #[schema(nullable = false)]
    disabled: Option<bool>,
}

/// A user after a change, and what the change ended.
#[derive(Serialize, ToSchema)]
#[schema(as = UserChanged)]
struct UserChanged<'a> {
    #[serde(flatten)]
    user: UserView<'a>,
    /// Console sessions of the user that the change ended.
    sessions_ended: u64,
    /// Bearer tokens of the user that the change revoked.
    tokens_revoked: u64,
}

/// The user a change names.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct UserName {
    name: String,
}

/// Change a user's password, role or state
///
/// Sets a new password, another role, or disables / enables the user. Any change ends all the
/// user's console sessions and revokes all her bearer tokens, in the same transaction as the
/// change and its audit record (so a token never outlives the credentials and rights it was
/// made under). The last enabled admin cannot be demoted or disabled, by herself or anyone
/// (409). Changing one's own password ends one's own session too (the cookie is cleared).
#[utoipa::path(
    patch,
    path = "/api/v1/admin/users/{name}",
    operation_id = "changeUser",
    tag = "admin",
    security(("adminSession" = ["admin"]), ("adminToken" = ["admin"])),
    params(UserName, CsrfToken),
    request_body = ChangeBody,
    responses(
        (status = 200, description = "The user after the change, and what it ended.",
         body = UserChanged),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 500, response = Internal),
        (status = 503, response = Busy),
    ),
)]
async fn change_user(
    State(st): State<AdminState>,
    Path(UserName { name }): Path<UserName>,
    method: Method,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Problem> {
    let actor = st.actor(&headers, &method, Role::Admin).await?;
    let body: ChangeBody = parse_body(&bytes)?;
    if body.role.is_none() && body.password.is_none() && body.disabled.is_none() {
        return Err(bad_request(
            "say what changes: role, password and/or disabled",
        ));
    }
    let role = match &body.role {
        Some(r) => Some(r.parse::<Role>().map_err(bad_request)?),
        None => None,
    };
    if let Some(p) = body.password.as_deref().and_then(password_problem) {
        return Err(bad_request(p));
    }
    let username = name.trim().to_lowercase();
    if st
        .inner
        .store
        .admin()
        .admin_user(&username)
        .await?
        .is_none()
    {
        return Err(Problem::not_found(format!("no user {username}")));
    }
    let password_hash = match body.password {
        Some(p) => Some(super::auth::hash(p).await?),
        None => None,
    };
    let change = UserChange {
        role,
        password_hash,
        disabled: body.disabled,
    };
    let done = st
        .inner
        .store
        .admin()
        .change_admin_user(&username, &change, &actor.user.username, (st.inner.clock)())
        .await?
        .ok_or_else(|| Problem::not_found(format!("no user {username}")))?;
    if done.changed {
        let id = done.user.id;
        st.inner.verified.forget(|(_, user, _)| *user == id);
        tracing::info!(
            target: "messo::audit",
            action = "user.change",
            actor = %actor.user.username,
            user = %username,
            sessions_ended = done.sessions_ended,
            tokens_revoked = done.tokens_revoked,
        );
    }
    let out = UserChanged {
        user: user_json(&st, &done.user),
        sessions_ended: done.sessions_ended,
        tokens_revoked: done.tokens_revoked,
    };
    let mut res = json_response(StatusCode::OK, out);
    if done.changed && done.user.id == actor.user.id && actor.csrf.is_some() {
        // Her own session ended with the change: the console signs in again.
        res.headers_mut().insert(
            header::SET_COOKIE,
            HeaderValue::from_static("messo_admin=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
        );
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, role: Role) -> AdminUser {
        AdminUser {
            id: 1,
            username: name.to_owned(),
            role,
            password_hash: None,
            disabled: false,
            created_at: Timestamp(0),
        }
    }

    #[test]
    fn four_eyes_needs_another_admin() {
        assert_eq!(
            may_publish(false, &user("anna", Role::Editor), "anna"),
            Ok(())
        );
        assert_eq!(
            may_publish(false, &user("vito", Role::Viewer), "anna"),
            Err(PublishRefused::NotAnEditor)
        );
        let own = may_publish(true, &user("anna", Role::Admin), "anna");
        assert_eq!(
            own,
            Err(PublishRefused::OwnVersion {
                author: "anna".to_owned()
            })
        );
        assert_eq!(
            own.map_err(|e| e.to_string()),
            Err("con la regola dei quattro occhi la versione scritta da anna va pubblicata da un altro amministratore".to_owned())
        );
        assert_eq!(
            may_publish(true, &user("bruno", Role::Editor), "anna"),
            Err(PublishRefused::NotAnAdmin)
        );
        assert_eq!(
            may_publish(true, &user("bruno", Role::Admin), "anna"),
            Ok(())
        );
    }

    #[test]
    fn rollback_restores_only_words_that_were_live_and_reviewed() {
        let v =
            |version: i64, author: &str, published_by: Option<&str>, restores| TemplateVersion {
                version,
                state: "retired".to_owned(),
                content: Content::default(),
                note: String::new(),
                author: author.to_owned(),
                created_at: Timestamp(0),
                published_by: published_by.map(str::to_owned),
                published_at: published_by.map(|_| Timestamp(1)),
                restores,
            };
        let default = default_version(&Content::default());
        let proposal = v(1, "anna", None, None);
        let reviewed = v(2, "elena", Some("bruno"), None);
        let solo = v(3, "anna", Some("anna"), None);
        let back_to_reviewed = v(4, "anna", Some("anna"), Some(2));
        let back_to_solo = v(5, "bruno", Some("bruno"), Some(3));
        for four_eyes in [false, true] {
            assert!(may_roll_back(four_eyes, &default, None).is_ok());
            assert_eq!(
                may_roll_back(four_eyes, &proposal, None).map_err(|e| e.0),
                Err(StatusCode::CONFLICT)
            );
            assert!(may_roll_back(four_eyes, &reviewed, None).is_ok());
            assert!(may_roll_back(four_eyes, &back_to_reviewed, Some(&reviewed)).is_ok());
        }
        assert!(may_roll_back(false, &solo, None).is_ok());
        assert_eq!(
            may_roll_back(true, &solo, None).map_err(|e| e.0),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            may_roll_back(true, &back_to_solo, Some(&solo)).map_err(|e| e.0),
            Err(StatusCode::FORBIDDEN)
        );
    }

    #[test]
    fn diff_names_the_part_that_changed() {
        let a = Content {
            subject: "Oggetto".to_owned(),
            text: "riga 1\nriga 2\n".to_owned(),
            html: None,
            sms: Some("sms".to_owned()),
            io_subject: None,
            io_markdown: None,
        };
        let mut b = a.clone();
        b.text = "riga 1\nriga due\n".to_owned();
        let d = diff(&a, &b);
        assert!(
            d.contains("--- text (prima)") && d.contains("-riga 2") && d.contains("+riga due"),
            "{d}"
        );
        assert!(!d.contains("subject") && !d.contains("sms"), "{d}");
        assert_eq!(diff(&a, &a), "");
    }

    #[test]
    fn cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; messo_admin=xyz; b=2"),
        );
        assert_eq!(cookie_value(&h).as_deref(), Some("xyz"));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("messo_admin="));
        assert_eq!(cookie_value(&h), None);
    }
}
