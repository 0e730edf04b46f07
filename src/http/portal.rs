//! The citizen's side of the HTTP edge:
//!
//! - `GET /s/{token}`: the status page a signed link opens (HTML, Italian or English);
//! - `GET /api/v1/citizen/tickets/{number}`: the same content as JSON, for the holder of the
//!   ticket's link (`Authorization: Bearer <link token>`) or for the administration's portal
//!   (a token with the `portal` scope plus the citizen's codice fiscale, `cf`);
//! - `GET /api/v1/citizen/tickets?cf=…`: the portal's "my requests" list.
//!
//! A forged or unknown link gets 404, an expired or revoked one 410, and neither shows
//! anything of a ticket. Requests without a portal token are limited per client, before any
//! other work; a portal token is limited per token (`portal.token_requests_per_minute`) before
//! its secret is checked, and one that asks about more distinct codici fiscali in an hour than
//! `portal.enumeration_alarm_per_hour` raises an audit alarm (`portal_enumeration_alarm`). A
//! token whose id is not configured costs no hashing. Every answer
//! is `Cache-Control: no-store` with strict security headers; every access is logged for audit
//! under the target `messo::audit`, with the ticket number and a salted hash of the client's
//! address, never a name, address or fiscal code.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::limit::KeyedLimit;
use super::openapi::{
    BadRequest, Forbidden, Gone, Internal, Invalid, NotFound, PortalLang, TicketNumber,
    TooManyRequests, Unauthorized,
};
use super::problem::Problem;
use super::{TokenBook, schema};
use crate::config::{Config, Scope};
use crate::domain::Lang;
use crate::metrics::Metrics;
use crate::portal::page::{self, Office, Refusal};
use crate::portal::view::{self, Facts};
use crate::portal::{LinkError, LinkKeys, revoked};
use crate::store::{
    AnswerChannel, NewAnswer, PortalError, PortalTicket, Store, StoreError, derive, evaluate,
};
use crate::time::{Clock, Timestamp};
use messo_core::inbound::survey::within_window;

/// What the portal's handlers share.
#[derive(Clone)]
pub struct PortalState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    tokens: Arc<TokenBook>,
    keys: LinkKeys,
    office: Office,
    clock: Clock,
    limiter: KeyedLimit<IpAddr>,
    /// Requests per portal token id.
    token_limit: KeyedLimit<String>,
    /// Distinct citizens asked about per portal token in the current hour.
    watch: Mutex<HashMap<String, Watch>>,
    alarm_at: usize,
    /// Hashes fiscal codes for the watch (keyed per process; nothing is kept in clear).
    cf_hasher: std::collections::hash_map::RandomState,
    trusted_proxies: Vec<IpAddr>,
    show_office: bool,
    working_day_s: i64,
    https: bool,
    /// The portal's origin (`scheme://host[:port]` of `portal.base_url`): where the status
    /// page's form may be posted from.
    origin: String,
    /// How long after closure the satisfaction question is open, in seconds (`None`: off).
    survey_window_s: Option<i64>,
    metrics: Arc<Metrics>,
    /// Makes the client hashes in the audit log useless outside this process.
    salt: [u8; 16],
}

/// One portal token's hour: the citizens it asked about (hashed, at most the alarm's threshold).
struct Watch {
    since: Instant,
    seen: HashSet<u64>,
    alarmed: bool,
}

/// The window the enumeration alarm counts distinct citizens in.
const WATCH_WINDOW: Duration = Duration::from_secs(3600);

impl PortalState {
    /// From the configuration: `[portal]`, the URP's contacts and hours, `http.tokens`.
    pub fn new(
        store: Store,
        tokens: Arc<TokenBook>,
        keys: LinkKeys,
        config: &Config,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> PortalState {
        let settings = crate::templates::Settings::from_config(config);
        let max_clients = config.http.limits.max_tracked_clients;
        let mut salt = [0u8; 16];
        if getrandom::fill(&mut salt).is_err() {
            // Without randomness the hash is still one-way; it only becomes stable across runs.
            salt = *b"messo-audit-salt";
        }
        PortalState {
            inner: Arc::new(Inner {
                store,
                tokens,
                keys,
                office: Office {
                    comune: settings.comune.clone(),
                    phone: settings.urp_phone.clone(),
                    email: settings.urp_email.clone(),
                    hours_it: settings.urp_hours_it.clone(),
                    hours_en: settings.urp_hours_en.clone(),
                },
                clock,
                limiter: KeyedLimit::per_minute(config.portal.requests_per_minute, max_clients),
                token_limit: KeyedLimit::per_minute(
                    config.portal.token_requests_per_minute,
                    max_clients,
                ),
                watch: Mutex::new(HashMap::new()),
                alarm_at: config.portal.enumeration_alarm_per_hour as usize,
                cf_hasher: std::collections::hash_map::RandomState::new(),
                trusted_proxies: config.portal.trusted_proxies.clone(),
                show_office: config.portal.show_office,
                working_day_s: settings.working_day_s,
                https: config.portal.base_url.starts_with("https://"),
                origin: origin_of(&config.portal.base_url),
                survey_window_s: config.survey.window_s(),
                metrics,
                salt,
            }),
        }
    }
}

impl PortalState {
    /// Forgets the clients whose allowance is full again, and hours that ended (the daemon calls
    /// it every minute).
    pub fn prune(&self) {
        let s = &self.inner;
        s.limiter.prune();
        s.token_limit.prune();
        s.watch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, w| w.since.elapsed() < WATCH_WINDOW);
    }

    /// Client addresses the per-client limiter remembers now.
    pub fn tracked_clients(&self) -> usize {
        self.inner.limiter.len()
    }
}

/// `scheme://host[:port]` of a URL, lower case.
fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    format!("{scheme}://{host}").to_ascii_lowercase()
}

/// The keys status links are signed with: `portal.link_key` (and `previous_link_key`) when
/// configured, otherwise the key kept in the store (made by the first daemon that asks).
pub async fn link_keys(
    config: &Config,
    store: &Store,
    now: Timestamp,
) -> Result<LinkKeys, PortalError> {
    let keys = if let Some(k) = &config.portal.link_key {
        LinkKeys::new(
            k.as_bytes(),
            config
                .portal
                .previous_link_key
                .as_deref()
                .map(str::as_bytes),
        )
    } else {
        let fresh = super::auth::random_hex(32).map_err(|e| PortalError::Corrupt(e.to_string()))?;
        let key = store.portal().portal_key(&fresh, now).await?;
        LinkKeys::new(key.as_bytes(), None)
    };
    // A link opens no longer than the validity configured now, whatever it carries.
    Ok(keys.with_max_valid_days(config.portal.link_valid_days))
}

/// What writes the status links of citizens' messages under this configuration.
pub fn link_maker(config: &Config, keys: LinkKeys) -> crate::portal::LinkMaker {
    crate::portal::LinkMaker {
        keys,
        base_url: config.portal.base_url.clone(),
        valid_days: config.portal.link_valid_days,
    }
}

/// The portal's routes with their documentation (merged into the whole API by [`super::app`]).
pub fn routes(state: PortalState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(status_page, survey_answer))
        .routes(routes!(list))
        .routes(routes!(one))
        .with_state(state)
}

/// The portal's routes.
pub fn router(state: PortalState) -> Router {
    routes(state).split_for_parts().0
}

// ---------------------------------------------------------------------------------------------
// Headers, clients, audit.

fn harden(mut res: Response, html: bool, https: bool) -> Response {
    let h = res.headers_mut();
    let csp = if html {
        HeaderValue::from_static(page::content_security_policy())
    } else {
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'")
    };
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, max-age=0"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), interest-cohort=()"),
    );
    if https {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    res
}

/// The client's address: the peer, or, behind a trusted proxy, the last address in
/// `X-Forwarded-For` that is not one of the trusted proxies.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    // Several headers are one list, in order; the nearest hop is the last.
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for hop in hops.iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => continue,
            Ok(ip) => return ip,
            // An unreadable hop: trust nothing further left of it.
            Err(_) => return peer,
        }
    }
    peer
}

impl Inner {
    fn client_tag(&self, ip: IpAddr) -> String {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(ip.to_string().as_bytes());
        hex::encode(&h.finalize()[..6])
    }

    /// Whether this client may make another request without a portal token.
    fn allow(&self, ip: IpAddr) -> bool {
        self.limiter.check(&ip)
    }

    /// Notes that portal token `id` asked about `cf`; the first time in an hour that it has asked
    /// about `alarm_at` distinct citizens, an audit alarm goes out.
    fn watch(&self, id: &str, principal: &str, cf: &str, ip: IpAddr) {
        let h = self.cf_hasher.hash_one(cf);
        let mut m = self.watch.lock().unwrap_or_else(PoisonError::into_inner);
        let w = m.entry(id.to_owned()).or_insert_with(|| Watch {
            since: Instant::now(),
            seen: HashSet::new(),
            alarmed: false,
        });
        if w.since.elapsed() >= WATCH_WINDOW {
            *w = Watch {
                since: Instant::now(),
                seen: HashSet::new(),
                alarmed: false,
            };
        }
        if w.seen.len() < self.alarm_at {
            w.seen.insert(h);
        }
        if w.seen.len() >= self.alarm_at && !w.alarmed {
            w.alarmed = true;
            self.metrics.portal_enumeration_alarms_total.inc();
            tracing::warn!(
                target: "messo::audit",
                action = "portal_enumeration_alarm",
                principal,
                distinct_citizens = self.alarm_at,
                window_s = WATCH_WINDOW.as_secs(),
                client = %self.client_tag(ip),
                "a portal token asked about many different citizens within an hour"
            );
        }
    }

    fn audit(&self, via: &str, principal: &str, ticket: &str, ip: IpAddr, status: u16) {
        let counter = if status < 400 {
            &self.metrics.portal_views_total
        } else {
            &self.metrics.portal_refused_total
        };
        counter.inc();
        tracing::info!(
            target: "messo::audit",
            action = "portal_view",
            via,
            principal,
            ticket,
            client = %self.client_tag(ip),
            status,
        );
    }

    fn page(&self, r: Refusal, lang: Lang) -> Response {
        let status = match r {
            Refusal::Invalid => StatusCode::NOT_FOUND,
            Refusal::Expired | Refusal::Revoked => StatusCode::GONE,
            Refusal::TooMany => StatusCode::TOO_MANY_REQUESTS,
            Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        let mut res = (status, html(page::refusal_page(r, lang, &self.office))).into_response();
        if r == Refusal::TooMany {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        }
        harden(res, true, self.https)
    }

    /// Everything the citizen may see of `t` at `now`, and the SLA it was computed under.
    async fn view(
        &self,
        t: &PortalTicket,
        lang: Option<Lang>,
        now: Timestamp,
    ) -> Result<(view::CitizenView, Arc<crate::sla::Sla>), StoreError> {
        citizen_view(
            &self.store,
            t,
            lang,
            now,
            self.working_day_s,
            self.show_office,
        )
        .await
    }
}

/// Everything the citizen may see of `t` at `now` (the status page, and what the telephone
/// and SMS answering tell a verified citizen), and the SLA it was computed under.
pub async fn citizen_view(
    store: &Store,
    t: &PortalTicket,
    lang: Option<Lang>,
    now: Timestamp,
    working_day_s: i64,
    show_office: bool,
) -> Result<(view::CitizenView, Arc<crate::sla::Sla>), StoreError> {
    let id = t.ticket.id;
    let (events, messages) = store.portal().portal_history(id).await?;
    let (received_at, derived) = derive(id, &events)?;
    let sla = store
        .versions()
        .sla(t.ticket.calendar_version, t.ticket.policy_version)?;
    let fresh = evaluate(&sla, received_at, &derived, now)?;
    let clock = sla.policy.target(derived.category, derived.priority).clock;
    let facts = Facts {
        ticket: &t.ticket,
        events: &events,
        sla: &fresh,
        clock,
        messages: &messages,
        calendar: &sla.calendar,
        working_day_s,
        show_office,
    };
    let v = view::citizen_view(&facts, lang.unwrap_or_else(|| view::ticket_lang(&t.ticket)));
    Ok((v, sla))
}

impl Inner {
    /// The satisfaction question of ticket `t`'s page at `now`: a thank-you once answered, the
    /// form while the ticket is closed within the window, nothing otherwise or when the survey
    /// is off.
    async fn survey_box(
        &self,
        token: &str,
        t: &PortalTicket,
        now: Timestamp,
    ) -> Result<Option<page::SurveyBox>, StoreError> {
        let (Some(window_s), Some(closed_at)) = (self.survey_window_s, t.ticket.closed_at) else {
            return Ok(None);
        };
        if self
            .store
            .satisfaction()
            .answer(t.ticket.id)
            .await?
            .is_some()
        {
            return Ok(Some(page::SurveyBox::Thanks));
        }
        Ok(
            within_window(closed_at, now, window_s).then(|| page::SurveyBox::Ask {
                form_token: self.keys.form_token(SURVEY_FORM, token),
            }),
        )
    }

    /// A refused answer: its status and a page that says why.
    fn answer_refused(&self, status: StatusCode, lang: Lang, why: AnswerRefusal) -> Response {
        let res = (
            status,
            html(page::answer_refused_page(
                why.text(lang),
                lang,
                &self.office,
            )),
        )
            .into_response();
        harden(res, true, self.https)
    }
}

fn html(body: String) -> ([(header::HeaderName, HeaderValue); 1], String) {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        body,
    )
}

/// `(lang, cf, before, limit)` from the query string; unknown parameters are ignored.
#[derive(Debug, Default)]
struct Params {
    lang: Option<Lang>,
    cf: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

fn params(q: Option<&str>) -> Params {
    let mut p = Params::default();
    for (k, v) in form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "lang" => p.lang = v.parse().ok(),
            "cf" => p.cf = Some(v.into_owned()),
            "before" => p.before = Some(v.into_owned()),
            "limit" => p.limit = Some(v.into_owned()),
            _ => {}
        }
    }
    p
}

// ---------------------------------------------------------------------------------------------
// The status page.

/// The token in a status link's path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // described, never built
struct LinkToken {
    /// The status link's token.
    #[param(max_length = 44, pattern = "^[A-Za-z0-9_-]+$")]
    token: String,
}

/// The citizen's status page
///
/// A small HTML page in Italian or English (`?lang=`), readable on a phone and without
/// JavaScript: where the request stands, the expected closure or the suspension with what is
/// missing, the steps, every message sent, how to send the integrazione and the URP's hours.
/// `Cache-Control: no-store`, a CSP that allows only the page's own inline style sheet,
/// `Referrer-Policy: no-referrer`.
#[utoipa::path(
    get,
    path = "/s/{token}",
    operation_id = "statusPage",
    tag = "portal",
    params(LinkToken, PortalLang),
    responses(
        (status = 200, description = "The page.", body = String, content_type = "text/html"),
        (status = 404, description = "Not a status link, an altered one, or one for no ticket: a \
                                      page that says so and shows nothing.",
         body = String, content_type = "text/html"),
        (status = 410, description = "The link expired or was revoked: a page that says so and \
                                      shows nothing.",
         body = String, content_type = "text/html"),
        (status = 429, description = "Too many requests from this client; `Retry-After: 60`.",
         body = String, content_type = "text/html",
         headers(("Retry-After" = i64, description = "Seconds to wait before retrying."))),
        (status = 503, description = "The store did not answer.",
         body = String, content_type = "text/html"),
    ),
)]
async fn status_page(
    State(s): State<PortalState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let s = &s.inner;
    let ip = client_ip(peer.ip(), &headers, &s.trusted_proxies);
    let asked = params(query.as_deref()).lang;
    let lang = asked.unwrap_or_default();
    if !s.allow(ip) {
        s.audit("link", "-", "-", ip, 429);
        return s.page(Refusal::TooMany, lang);
    }
    let now = (s.clock)();
    let link = match s.keys.verify(&token, now) {
        Ok(l) => l,
        Err(LinkError::Expired { ticket_id, .. }) => {
            s.audit("link", "-", &format!("id:{ticket_id}"), ip, 410);
            return s.page(Refusal::Expired, lang);
        }
        Err(_) => {
            s.audit("link", "-", "-", ip, 404);
            return s.page(Refusal::Invalid, lang);
        }
    };
    let t = match s.store.portal().portal_ticket_by_id(link.ticket_id).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            s.audit("link", "-", &format!("id:{}", link.ticket_id), ip, 404);
            return s.page(Refusal::Invalid, lang);
        }
        Err(e) => {
            tracing::error!(error = %e, "status page: store unavailable");
            return s.page(Refusal::Unavailable, lang);
        }
    };
    let lang = asked.unwrap_or_else(|| view::ticket_lang(&t.ticket));
    if revoked(&link, t.links_revoked_at) {
        s.audit("link", "-", &t.ticket.number, ip, 410);
        return s.page(Refusal::Revoked, lang);
    }
    let (v, sla) = match s.view(&t, Some(lang), now).await {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(error = %e, ticket = %t.ticket.number, "status page: cannot build the view");
            return s.page(Refusal::Unavailable, lang);
        }
    };
    let other = match lang {
        Lang::It => "?lang=en",
        Lang::En => "?lang=it",
    };
    let updated = crate::locale::date_time(lang, &sla.calendar, now);
    let survey_box = match s.survey_box(&token, &t, now).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, ticket = %t.ticket.number, "status page: cannot read the survey answer");
            return s.page(Refusal::Unavailable, lang);
        }
    };
    let code = s.keys.access_code(t.ticket.id, t.links_revoked_at);
    let body = page::status_page_coded(
        &v,
        lang,
        &s.office,
        Some(other),
        &updated,
        survey_box.as_ref(),
        Some(&code),
    );
    s.audit("link", "-", &t.ticket.number, ip, 200);
    harden((StatusCode::OK, html(body)).into_response(), true, s.https)
}

// ---------------------------------------------------------------------------------------------
// The satisfaction answer.

/// What the status page's form tokens are bound to, besides the link.
const SURVEY_FORM: &str = "survey";

/// The largest answer body read: a comment of [`page::COMMENT_MAX_CHARS`] characters, each up
/// to 4 bytes of UTF-8 written as 12 of percent-encoding, and the other fields.
const ANSWER_BODY_LIMIT: usize = page::COMMENT_MAX_CHARS * 12 + 1024;

/// Why an answer was refused, as the citizen reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AnswerRefusal {
    CrossSite,
    MediaType,
    TooLarge,
    FormToken,
    Score,
    Comment,
    NotOpen,
}

impl AnswerRefusal {
    fn text(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (AnswerRefusal::CrossSite, Lang::It) => {
                "La risposta deve essere inviata dalla pagina della sua richiesta, non da un altro sito."
            }
            (AnswerRefusal::CrossSite, Lang::En) => {
                "The answer must be sent from your request's page, not from another site."
            }
            (AnswerRefusal::MediaType, Lang::It) => {
                "La risposta non è stata inviata dal modulo della pagina."
            }
            (AnswerRefusal::MediaType, Lang::En) => "The answer was not sent by the page's form.",
            (AnswerRefusal::TooLarge, Lang::It) => "La risposta è troppo lunga.",
            (AnswerRefusal::TooLarge, Lang::En) => "The answer is too long.",
            (AnswerRefusal::FormToken, Lang::It) => {
                "Il modulo non è valido per questa richiesta: riapra il link ricevuto nel messaggio e risponda da lì."
            }
            (AnswerRefusal::FormToken, Lang::En) => {
                "The form is not valid for this request: open the link from the message again and answer there."
            }
            (AnswerRefusal::Score, Lang::It) => "Scelga un voto da 1 a 5.",
            (AnswerRefusal::Score, Lang::En) => "Choose a score from 1 to 5.",
            (AnswerRefusal::Comment, Lang::It) => {
                "Il commento è troppo lungo (al massimo 1000 caratteri)."
            }
            (AnswerRefusal::Comment, Lang::En) => {
                "The comment is too long (at most 1000 characters)."
            }
            (AnswerRefusal::NotOpen, Lang::It) => {
                "Per questa richiesta non è possibile esprimere una valutazione ora."
            }
            (AnswerRefusal::NotOpen, Lang::En) => "This request cannot be rated now.",
        }
    }
}

/// Whether a form post comes from the portal's own site: `Sec-Fetch-Site`, when the browser
/// sends it, must be `same-origin`; `Origin`, when sent, must be the portal's or the `Host`'s.
/// The page's `Referrer-Policy: no-referrer` makes browsers send `Origin: null` on its own form
/// posts, so `null` is accepted only beside `Sec-Fetch-Site: same-origin`.
fn same_site(headers: &HeaderMap, portal_origin: &str) -> bool {
    let site = headers.get("sec-fetch-site").map(|v| v.to_str().ok());
    if site.is_some_and(|s| s != Some("same-origin")) {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str().map(str::to_ascii_lowercase) else {
        return false;
    };
    if origin == "null" {
        return site.is_some();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_ascii_lowercase);
    origin == portal_origin
        || host.is_some_and(|h| origin == format!("http://{h}") || origin == format!("https://{h}"))
}

/// The answer's fields: (form token, score, comment); the first of each, others ignored.
fn answer_fields(body: &[u8]) -> (Option<String>, Option<String>, Option<String>) {
    let (mut form, mut score, mut comment) = (None, None, None);
    for (k, v) in form_urlencoded::parse(body) {
        let slot = match k.as_ref() {
            "form" => &mut form,
            "score" => &mut score,
            "comment" => &mut comment,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(v.into_owned());
        }
    }
    (form, score, comment)
}

/// Answer the satisfaction question
///
/// The form of a closed request's status page: one of five buttons (`score`, 1 to 5) and an
/// optional `comment` (at most 1000 characters, for the office only), posted as
/// `application/x-www-form-urlencoded` with the page's form token (`form`, bound to the link).
/// One answer per ticket: a second one is ignored and the first stands. Accepted only from the
/// portal's own site (`Sec-Fetch-Site`, `Origin`), while the ticket is closed and within
/// `survey.answer_days` of its closure. On success, `303 See Other` back to the page, which
/// then thanks the citizen.
#[utoipa::path(
    post,
    path = "/s/{token}",
    operation_id = "answerSurvey",
    tag = "portal",
    params(LinkToken, PortalLang),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
                 description = "`form` (the page's form token), `score` (1–5), `comment` (optional)."),
    responses(
        (status = 303, description = "Recorded (or answered before): back to the status page.",
         headers(("Location" = String, description = "The status page."))),
        (status = 403, description = "Posted from another site, or without the page's form token: \
                                      a page that says why.",
         body = String, content_type = "text/html"),
        (status = 404, description = "Not a status link, or the survey is off.",
         body = String, content_type = "text/html"),
        (status = 409, description = "The request is not closed, or closed too long ago to be rated.",
         body = String, content_type = "text/html"),
        (status = 410, description = "The link expired or was revoked.",
         body = String, content_type = "text/html"),
        (status = 413, description = "The body is over its limit.",
         body = String, content_type = "text/html"),
        (status = 415, description = "Not a form post.", body = String, content_type = "text/html"),
        (status = 422, description = "No score from 1 to 5, or a comment over 1000 characters.",
         body = String, content_type = "text/html"),
        (status = 429, description = "Too many requests from this client; `Retry-After: 60`.",
         body = String, content_type = "text/html",
         headers(("Retry-After" = i64, description = "Seconds to wait before retrying."))),
        (status = 503, description = "The store did not answer.",
         body = String, content_type = "text/html"),
    ),
)]
async fn survey_answer(
    State(s): State<PortalState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let s = &s.inner;
    let ip = client_ip(peer.ip(), &headers, &s.trusted_proxies);
    let asked = params(query.as_deref()).lang;
    let lang = asked.unwrap_or_default();
    if !s.allow(ip) {
        s.audit("survey", "-", "-", ip, 429);
        return s.page(Refusal::TooMany, lang);
    }
    // Refused before any work: another site, another media type, a body over the limit.
    if !same_site(&headers, &s.origin) {
        s.audit("survey", "-", "-", ip, 403);
        return s.answer_refused(StatusCode::FORBIDDEN, lang, AnswerRefusal::CrossSite);
    }
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|e| {
            e.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        s.audit("survey", "-", "-", ip, 415);
        return s.answer_refused(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            lang,
            AnswerRefusal::MediaType,
        );
    }
    let Ok(bytes) = axum::body::to_bytes(body, ANSWER_BODY_LIMIT).await else {
        s.audit("survey", "-", "-", ip, 413);
        return s.answer_refused(StatusCode::PAYLOAD_TOO_LARGE, lang, AnswerRefusal::TooLarge);
    };
    let now = (s.clock)();
    let link = match s.keys.verify(&token, now) {
        Ok(l) => l,
        Err(LinkError::Expired { ticket_id, .. }) => {
            s.audit("survey", "-", &format!("id:{ticket_id}"), ip, 410);
            return s.page(Refusal::Expired, lang);
        }
        Err(_) => {
            s.audit("survey", "-", "-", ip, 404);
            return s.page(Refusal::Invalid, lang);
        }
    };
    let (form, score, comment) = answer_fields(&bytes);
    if !form
        .as_deref()
        .is_some_and(|f| s.keys.verify_form_token(SURVEY_FORM, &token, f))
    {
        s.audit("survey", "-", &format!("id:{}", link.ticket_id), ip, 403);
        return s.answer_refused(StatusCode::FORBIDDEN, lang, AnswerRefusal::FormToken);
    }
    let Some(window_s) = s.survey_window_s else {
        s.audit("survey", "-", &format!("id:{}", link.ticket_id), ip, 404);
        return s.page(Refusal::Invalid, lang);
    };
    let t = match s.store.portal().portal_ticket_by_id(link.ticket_id).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            s.audit("survey", "-", &format!("id:{}", link.ticket_id), ip, 404);
            return s.page(Refusal::Invalid, lang);
        }
        Err(e) => {
            tracing::error!(error = %e, "survey answer: store unavailable");
            return s.page(Refusal::Unavailable, lang);
        }
    };
    let lang = asked.unwrap_or_else(|| view::ticket_lang(&t.ticket));
    let number = t.ticket.number.clone();
    if revoked(&link, t.links_revoked_at) {
        s.audit("survey", "-", &number, ip, 410);
        return s.page(Refusal::Revoked, lang);
    }
    let Some(score) = score
        .as_deref()
        .and_then(|v| v.trim().parse::<u8>().ok())
        .filter(|v| (1..=5).contains(v))
    else {
        s.audit("survey", "-", &number, ip, 422);
        return s.answer_refused(StatusCode::UNPROCESSABLE_ENTITY, lang, AnswerRefusal::Score);
    };
    let comment = comment.filter(|c| !c.trim().is_empty());
    if comment
        .as_deref()
        .is_some_and(|c| c.trim().chars().count() > page::COMMENT_MAX_CHARS)
    {
        s.audit("survey", "-", &number, ip, 422);
        return s.answer_refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            lang,
            AnswerRefusal::Comment,
        );
    }
    let open = t
        .ticket
        .closed_at
        .is_some_and(|c| within_window(c, now, window_s));
    let answered = match s.store.satisfaction().answer(t.ticket.id).await {
        Ok(a) => a.is_some(),
        Err(e) => {
            tracing::error!(error = %e, ticket = %number, "survey answer: store unavailable");
            return s.page(Refusal::Unavailable, lang);
        }
    };
    if !open && !answered {
        s.audit("survey", "-", &number, ip, 409);
        return s.answer_refused(StatusCode::CONFLICT, lang, AnswerRefusal::NotOpen);
    }
    if !answered {
        let answer = NewAnswer {
            ticket_id: t.ticket.id,
            score,
            comment,
            channel: AnswerChannel::Portal,
            answered_at: now,
            inbound_id: None,
        };
        // A second answer (a double tap, two tabs) is ignored: the first one stands.
        if let Err(e) = s.store.satisfaction().record_answer(&answer).await {
            tracing::error!(error = %e, ticket = %number, "survey answer: not recorded");
            return s.page(Refusal::Unavailable, lang);
        }
    }
    s.audit("survey", "-", &number, ip, 303);
    // Back to the page, relative to this address, so a path in front (a proxy's) is kept.
    let location = match asked {
        Some(Lang::It) => format!("{token}?lang=it"),
        Some(Lang::En) => format!("{token}?lang=en"),
        None => token.clone(),
    };
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    harden(res, true, s.https)
}

// ---------------------------------------------------------------------------------------------
// The feed.

fn json_ok(v: Value, https: bool) -> Response {
    let mut res = (StatusCode::OK, v.to_string()).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    harden(res, false, https)
}

fn problem(p: Problem, https: bool) -> Response {
    harden(super::auth::problem_response(p), false, https)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn too_many() -> Problem {
    Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        "Too many requests",
        "this client made too many requests; wait a minute",
    )
}

fn gone(detail: &str) -> Problem {
    Problem::new(
        StatusCode::GONE,
        "link-gone",
        "The link no longer opens",
        detail,
    )
}

fn too_many_for_token() -> Problem {
    Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        "Too many requests",
        "this portal token made too many requests; wait a minute",
    )
}

/// The portal's token (scope `portal`) and the citizen's normalised fiscal code. The cheap
/// checks come first: a token whose id is not configured counts against the client's allowance
/// and costs no hashing; a known one is limited per token before its secret is checked.
async fn portal_caller(
    s: &Inner,
    headers: &HeaderMap,
    secret: &str,
    cf: Option<&str>,
    ip: IpAddr,
) -> Result<(String, String), Problem> {
    let known = super::split_token(secret)
        .map(|(id, _)| id)
        .filter(|id| s.tokens.knows(id));
    let Some(id) = known else {
        if !s.allow(ip) {
            return Err(too_many());
        }
        return Err(super::auth::unauthorized("unknown token"));
    };
    if !s.token_limit.check(&id.to_owned()) {
        return Err(too_many_for_token());
    }
    let principal = match s.tokens.authorize(headers, ip, Scope::Portal).await {
        Ok(p) => p,
        Err(p) => {
            // Failed attempts count against the client's allowance.
            if p.status == StatusCode::UNAUTHORIZED && !s.allow(ip) {
                return Err(too_many());
            }
            return Err(p);
        }
    };
    let given = cf
        .or_else(|| headers.get("x-citizen-fiscal-code")?.to_str().ok())
        .ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "missing-citizen",
                "The citizen is not named",
                "a portal token needs the citizen's codice fiscale: ?cf=… or X-Citizen-Fiscal-Code",
            )
        })?;
    let cf = crate::ticket::normalize_fiscal_code(given).ok_or_else(|| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-fiscal-code",
            "Not a codice fiscale",
            "cf must be a codice fiscale: 16 characters with a valid check letter",
        )
    })?;
    s.watch(&principal.id, &principal.name, &cf, ip);
    Ok((principal.name, cf))
}

/// The citizen named by a portal token's request.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // described, never built
struct FiscalCode {
    /// The citizen's codice fiscale, as the portal knows it after SPID/CIE sign-in (any case).
    /// Required with a portal token; `X-Citizen-Fiscal-Code` may carry it instead.
    #[param(pattern = "^[A-Za-z0-9]{16}$")]
    cf: Option<String>,
}

/// One request as the citizen sees it
///
/// For the holder of the ticket's status link (`Authorization: Bearer <link token>`), or for the
/// portal (a `portal` token plus `cf`; another citizen's ticket is 404). The same content as the
/// status page.
#[utoipa::path(
    get,
    path = "/api/v1/citizen/tickets/{number}",
    operation_id = "citizenTicket",
    tag = "portal",
    security(("statusLink" = []), ("apiToken" = ["portal"])),
    params(TicketNumber, FiscalCode, PortalLang),
    responses(
        (status = 200, description = "The view.", body = schema::CitizenView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 410, response = Gone),
        (status = 429, response = TooManyRequests),
        (status = 500, response = Internal),
    ),
)]
async fn one(
    State(s): State<PortalState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(number): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let s = &s.inner;
    let ip = client_ip(peer.ip(), &headers, &s.trusted_proxies);
    let p = params(query.as_deref());
    let now = (s.clock)();
    let secret = bearer(&headers);
    let via = if secret.is_some_and(|b| b.starts_with("messo_")) {
        "portal"
    } else {
        "link"
    };
    let result = match find_one(s, &headers, secret, &number, p.cf.as_deref(), ip, now).await {
        Ok((t, principal)) => s
            .view(&t, p.lang, now)
            .await
            .map(|(v, _)| (v, principal))
            .map_err(Problem::from),
        Err(e) => Err(e),
    };
    match result {
        Ok((v, principal)) => {
            s.audit(via, &principal, &v.number, ip, 200);
            let mut body = serde_json::to_value(&v).unwrap_or(Value::Null);
            body["as_of"] = json!(now.to_string());
            json_ok(body, s.https)
        }
        Err(e) => {
            s.audit(via, "-", &number, ip, e.status.as_u16());
            problem(e, s.https)
        }
    }
}

/// The ticket `number` for this caller — the holder of its link, or the portal for the citizen
/// it names — and the portal token's name (`-` for a link).
async fn find_one(
    s: &Inner,
    headers: &HeaderMap,
    secret: Option<&str>,
    number: &str,
    cf: Option<&str>,
    ip: IpAddr,
    now: Timestamp,
) -> Result<(PortalTicket, String), Problem> {
    let Some(secret) = secret else {
        if !s.allow(ip) {
            return Err(too_many());
        }
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication required",
            "send Authorization: Bearer <status link token> or a portal token with ?cf=",
        ));
    };
    if secret.starts_with("messo_") {
        let (principal, cf) = portal_caller(s, headers, secret, cf, ip).await?;
        return match s.store.portal().portal_ticket_of(number, &cf).await? {
            Some(t) => Ok((t, principal)),
            None => Err(Problem::not_found(format!(
                "no ticket {number} for this citizen"
            ))),
        };
    }
    if !s.allow(ip) {
        return Err(too_many());
    }
    let link = match s.keys.verify(secret, now) {
        Ok(l) => l,
        Err(LinkError::Expired { .. }) => return Err(gone("the status link expired")),
        Err(_) => {
            return Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Authentication required",
                "the token is neither a status link nor a portal token",
            ));
        }
    };
    match s.store.portal().portal_ticket_by_id(link.ticket_id).await? {
        // A link opens its own ticket only; another number is as unknown as a bad one.
        Some(t) if t.ticket.number == number => {
            if revoked(&link, t.links_revoked_at) {
                Err(gone("the status link was revoked"))
            } else {
                Ok((t, "-".to_owned()))
            }
        }
        _ => Err(Problem::not_found(format!("ticket {number} not found"))),
    }
}

/// The query of the citizen's list.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // described, never built
struct ListParams {
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<i64>,
    /// The previous page's `next`.
    #[param(minimum = 1)]
    before: Option<i64>,
}

/// One request in the citizen's list.
#[derive(Serialize, ToSchema)]
#[schema(as = CitizenTicketSummary)]
struct Summary {
    number: String,
    subject: String,
    #[schema(required = true)]
    office: Option<String>,
    #[schema(value_type = schema::When)]
    received_at: view::When,
    #[schema(value_type = schema::CitizenStatus)]
    status: view::Status,
    #[schema(value_type = Option<schema::When>, required = true)]
    expected_closure: Option<view::When>,
    term_exceeded: bool,
    #[schema(value_type = Option<schema::When>, required = true)]
    waiting_since: Option<view::When>,
    #[schema(value_type = Option<schema::When>, required = true)]
    closed_at: Option<view::When>,
}

/// One page of the citizen's list.
#[derive(Serialize, ToSchema)]
#[schema(as = CitizenTicketPage)]
struct Page {
    tickets: Vec<Summary>,
    /// Pass as `before` for the next page; null on the last.
    #[schema(required = true)]
    next: Option<i64>,
}

/// A citizen's requests (the portal's "my requests")
///
/// Newest first. Needs a token with scope `portal` and the citizen's codice fiscale.
#[utoipa::path(
    get,
    path = "/api/v1/citizen/tickets",
    operation_id = "citizenTickets",
    tag = "portal",
    security(("apiToken" = ["portal"])),
    params(FiscalCode, PortalLang, ListParams),
    responses(
        (status = 200, description = "One page.", body = Page),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 422, response = Invalid),
        (status = 429, response = TooManyRequests),
        (status = 500, response = Internal),
    ),
)]
async fn list(
    State(s): State<PortalState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let s = &s.inner;
    let ip = client_ip(peer.ip(), &headers, &s.trusted_proxies);
    let p = params(query.as_deref());
    let (principal, cf) = match list_caller(s, &headers, p.cf.as_deref(), ip).await {
        Ok(x) => x,
        Err(e) => return problem(e, s.https),
    };
    let (limit, before) = match page_bounds(p.limit.as_deref(), p.before.as_deref()) {
        Ok(x) => x,
        Err(e) => return problem(Problem::invalid(vec![e]), s.https),
    };
    let rows = match s.store.portal().citizen_tickets(&cf, before, limit).await {
        Ok(r) => r,
        Err(e) => return problem(e.into(), s.https),
    };
    let items = match rows
        .iter()
        .map(|t| s.summary(t, p.lang))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(items) => items,
        Err(e) => return problem(e, s.https),
    };
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|t| t.ticket.id))
        .flatten();
    s.audit(
        "portal",
        &principal,
        &format!("list:{}", rows.len()),
        ip,
        200,
    );
    let page = Page {
        tickets: items,
        next,
    };
    json_ok(serde_json::to_value(&page).unwrap_or(Value::Null), s.https)
}

/// The caller of the list: a portal token (counted against the client's allowance when there
/// is none) and the citizen it asks about.
async fn list_caller(
    s: &Inner,
    headers: &HeaderMap,
    cf: Option<&str>,
    ip: IpAddr,
) -> Result<(String, String), Problem> {
    let Some(secret) = bearer(headers).filter(|b| b.starts_with("messo_")) else {
        if !s.allow(ip) {
            return Err(too_many());
        }
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication required",
            "the list needs a portal token (scope portal) and ?cf=",
        ));
    };
    portal_caller(s, headers, secret, cf, ip).await
}

/// A list page's size (20 unless `limit` says 1 to 100) and where it starts (before the id
/// `before`, the previous page's `next`; from the newest when absent).
fn page_bounds(
    limit: Option<&str>,
    before: Option<&str>,
) -> Result<(i64, Option<i64>), crate::ticket::FieldError> {
    let bad = |field: &str, message: &str| crate::ticket::FieldError {
        field: field.to_owned(),
        message: message.to_owned(),
    };
    let limit = match limit.map(str::parse::<i64>) {
        None => 20,
        Some(Ok(n @ 1..=100)) => n,
        Some(_) => return Err(bad("limit", "must be a whole number from 1 to 100")),
    };
    let before = match before.map(str::parse::<i64>) {
        None => None,
        Some(Ok(n)) if n > 0 => Some(n),
        Some(_) => {
            return Err(bad(
                "before",
                "must be the `next` value of the previous page",
            ));
        }
    };
    Ok((limit, before))
}

impl Inner {
    /// One line of the citizen's list, in `lang` (else the ticket's language): what the status
    /// page says of the ticket.
    fn summary(&self, t: &PortalTicket, lang: Option<Lang>) -> Result<Summary, Problem> {
        let sla = self
            .store
            .versions()
            .sla(t.ticket.calendar_version, t.ticket.policy_version)?;
        let target = sla.policy.target(t.ticket.category, t.ticket.priority);
        let facts = Facts {
            ticket: &t.ticket,
            events: &[],
            sla: &t.ticket.sla,
            clock: target.clock,
            messages: &[],
            calendar: &sla.calendar,
            working_day_s: self.working_day_s,
            show_office: self.show_office,
        };
        let lang = lang.unwrap_or_else(|| view::ticket_lang(&t.ticket));
        let v = view::citizen_view(&facts, lang);
        Ok(Summary {
            number: v.number,
            subject: v.subject,
            office: v.office,
            received_at: v.received_at,
            status: v.status,
            expected_closure: v.expected_closure,
            term_exceeded: v.term_exceeded,
            waiting_since: v.suspension.map(|x| x.since),
            closed_at: v.closed_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_page_is_20_by_default_and_its_bounds_are_checked() {
        assert_eq!(page_bounds(None, None), Ok((20, None)));
        assert_eq!(page_bounds(Some("100"), Some("7")), Ok((100, Some(7))));
        for limit in ["0", "101", "x", "-1"] {
            assert_eq!(
                page_bounds(Some(limit), None).map_err(|e| e.field),
                Err("limit".to_owned()),
                "{limit}"
            );
        }
        for before in ["0", "-3", "x"] {
            assert_eq!(
                page_bounds(None, Some(before)).map_err(|e| e.field),
                Err("before".to_owned()),
                "{before}"
            );
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn the_client_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.7, 10.0.0.2"),
        );
        let trusted = [ip("127.0.0.1"), ip("10.0.0.2")];
        assert_eq!(
            client_ip(ip("198.51.100.1"), &h, &trusted),
            ip("198.51.100.1")
        );
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("203.0.113.7"));
        assert_eq!(
            client_ip(ip("127.0.0.1"), &HeaderMap::new(), &trusted),
            ip("127.0.0.1")
        );
        let mut two = HeaderMap::new();
        two.append("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        two.append(
            "x-forwarded-for",
            HeaderValue::from_static("198.51.100.4, 127.0.0.1"),
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), &two, &trusted),
            ip("198.51.100.4")
        );
        let mut junk = HeaderMap::new();
        junk.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.7, not-an-ip"),
        );
        assert_eq!(client_ip(ip("127.0.0.1"), &junk, &trusted), ip("127.0.0.1"));
    }
}
