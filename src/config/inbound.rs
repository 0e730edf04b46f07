//! The `[inbound]` section: webhook endpoints and how they are verified, how replies are matched
//! to tickets, where attachments go, how long raw payloads are kept, and the IMAP mailbox.

use std::path::PathBuf;

use serde::Deserialize;

use super::{MIN_SECRET_CHARS, Problems};
use messo_core::inbound::Route;
use messo_core::inbound::auth::MailAuthMode;
use messo_core::inbound::matching::{OPT_IN_DEFAULT, OPT_OUT_DEFAULT, TicketFormat};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInbound {
    ticket_format: Option<String>,
    reply_address: Option<String>,
    attachments_dir: Option<String>,
    max_attachment_bytes: Option<i64>,
    max_mail_bytes: Option<i64>,
    raw_retention_days: Option<i64>,
    hint_every_hours: Option<i64>,
    signature_tolerance_s: Option<i64>,
    opt_out_keywords: Option<Vec<String>>,
    opt_in_keywords: Option<Vec<String>>,
    mail_auth: Option<String>,
    trusted_authserv_ids: Option<Vec<String>>,
    #[serde(default)]
    endpoints: Vec<RawEndpoint>,
    imap: Option<RawImap>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEndpoint {
    name: Option<String>,
    family: Option<String>,
    auth_token: Option<String>,
    token: Option<String>,
    secret: Option<String>,
    previous_secret: Option<String>,
    rate_per_s: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawImap {
    host: Option<String>,
    port: Option<i64>,
    security: Option<String>,
    username: Option<String>,
    password: Option<String>,
    mailbox: Option<String>,
    processed_mailbox: Option<String>,
    ca_bundle: Option<String>,
    timeout_s: Option<i64>,
    poll_interval_s: Option<i64>,
    max_message_bytes: Option<i64>,
}

/// How the connection to the IMAP server is protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImapSecurity {
    /// TLS from the first byte (IMAPS, usually port 993).
    Tls,
    /// A plain connection upgraded with STARTTLS before logging in (usually port 143).
    StartTls,
    /// No encryption: only for a server on the same host or in tests.
    Plain,
}

/// The mailbox Messo polls.
#[derive(Debug, Clone)]
pub struct ImapAccount {
    pub host: String,
    pub port: u16,
    pub security: ImapSecurity,
    pub username: String,
    pub password: String,
    /// The folder to poll, usually `INBOX`.
    pub mailbox: String,
    /// Where processed messages go, created when missing (written with the server's hierarchy
    /// separator, e.g. `Messo/Elaborati`). None: they stay where they are, flagged `\Seen`.
    pub processed_mailbox: Option<String>,
    /// A PEM file of extra CA certificates trusted besides the system's roots.
    pub ca_bundle: Option<PathBuf>,
    /// The limit for each network step (connect, TLS, each command), in seconds.
    pub timeout_s: u64,
    /// Messages larger than this are not downloaded: they stay unseen and are counted.
    pub max_message_bytes: u64,
}

/// How an endpoint's requests are verified, which also says which payload shapes it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Family {
    /// Twilio: `X-Twilio-Signature` with the account's auth token.
    Twilio { auth_token: String },
    /// The Italian REST platforms (Skebby, Aruba, Trendoo, Mobyt, smsend): a secret token in
    /// the callback URL (`/webhooks/sms/<name>/<token>`).
    RestIt { token: String },
    /// Our documented JSON, signed with HMAC-SHA256 over timestamp and body; `secrets` holds
    /// the current secret and, while rotating, the previous one.
    Generic { secrets: Vec<String> },
    /// An inbound-mail service posting multipart forms, with a secret token in the URL.
    Mail { token: String },
    /// Vonage Voice API: signed callbacks (a JWT in `Authorization: Bearer`, HS256 with the
    /// account's signature secret, carrying the SHA-256 of the body as `payload_hash`);
    /// `secrets` holds the current secret and, while rotating, the previous one.
    Vonage { secrets: Vec<String> },
}

impl Family {
    /// The configured name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Family::Twilio { .. } => "twilio",
            Family::RestIt { .. } => "rest-it",
            Family::Generic { .. } => "generic",
            Family::Mail { .. } => "mail",
            Family::Vonage { .. } => "vonage",
        }
    }

    /// Whether this family posts to `route`.
    pub fn takes(&self, route: Route) -> bool {
        match self {
            Family::Twilio { .. } => matches!(route, Route::Sms | Route::Dlr | Route::Voice),
            Family::RestIt { .. } => matches!(route, Route::Sms | Route::Dlr),
            Family::Generic { .. } => true,
            Family::Mail { .. } => route == Route::Mail,
            Family::Vonage { .. } => route == Route::Voice,
        }
    }

    /// Whether its URLs carry a token segment.
    pub fn uses_token(&self) -> bool {
        matches!(self, Family::RestIt { .. } | Family::Mail { .. })
    }
}

/// One webhook endpoint: `/webhooks/{sms|voice|dlr|mail}/<name>[/<token>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    pub family: Family,
    /// Requests per second from one client address (a burst of as many is allowed).
    pub rate_per_s: u32,
}

/// The IMAP mailbox polled for e-mail replies.
#[derive(Debug, Clone)]
pub struct ImapPolling {
    pub account: ImapAccount,
    pub poll_interval_s: u64,
}

/// The `[inbound]` section, validated.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// How ticket numbers look, for finding them in replies.
    pub ticket_format: TicketFormat,
    /// The address citizens reply to; `base+<ticket>@domain` names the ticket.
    pub reply_address: Option<String>,
    pub attachments_dir: PathBuf,
    /// An attachment larger than this is recorded (name, size, hash) but its file not kept.
    pub max_attachment_bytes: u64,
    /// The largest body the mail webhook takes (other webhooks: 64 KiB).
    pub max_mail_bytes: usize,
    /// Raw payloads are kept this many days for audit, then erased.
    pub raw_retention_days: u32,
    /// At most one "how to quote your ticket number" answer per sender in this many hours.
    pub hint_every_hours: u32,
    /// How far a generic signature's timestamp may be from now.
    pub signature_tolerance_s: i64,
    pub opt_out_keywords: Vec<String>,
    pub opt_in_keywords: Vec<String>,
    /// Whether an e-mail reply resumes a clock only when its sender is authenticated
    /// (`require`, the default) or on its `From` alone (`off`).
    pub mail_auth: MailAuthMode,
    /// The receiving relays whose `Authentication-Results` headers are believed (lowercase).
    pub trusted_authserv_ids: Vec<String>,
    pub endpoints: Vec<Endpoint>,
    pub imap: Option<ImapPolling>,
}

impl Default for Inbound {
    fn default() -> Inbound {
        let mut p = Problems(Vec::new());
        inbound(&mut p, RawInbound::default(), &[])
    }
}

impl Inbound {
    /// What an operator must hear at start about e-mail replies and the clock: `off` trusts
    /// the `From` address alone; `require` without a trusted relay leaves the mailbox's
    /// replies unauthenticated (each one a note and an office alert).
    pub fn mail_auth_warning(&self) -> Option<&'static str> {
        match self.mail_auth {
            MailAuthMode::Off => Some(
                "inbound.mail_auth = \"off\": an e-mail reply resumes a ticket's clock on its From \
                 address alone, which anyone can forge; set it to \"require\" and list the \
                 receiving relays in inbound.trusted_authserv_ids",
            ),
            MailAuthMode::Require
                if self.imap.is_some() && self.trusted_authserv_ids.is_empty() =>
            {
                Some(
                    "inbound.trusted_authserv_ids is empty: e-mail replies from the mailbox cannot \
                     be authenticated, so none resumes a clock (each is a note and the office is \
                     told); list the relays that receive the URP's mail",
                )
            }
            MailAuthMode::Require => None,
        }
    }

    /// The endpoint named `name`.
    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == name)
    }
}

fn ranged(p: &mut Problems, key: &str, v: Option<i64>, default: i64, lo: i64, hi: i64) -> i64 {
    let v = v.unwrap_or(default);
    if !(lo..=hi).contains(&v) {
        p.add(key, format!("must be from {lo} to {hi}, found {v}"));
        return default;
    }
    v
}

/// A secret that verifies requests (URL token, signing secret, Twilio auth token): required,
/// and refused below [`MIN_SECRET_CHARS`]. The message names the key, never the value.
fn secret(p: &mut Problems, key: &str, v: Option<String>, what: &str) -> String {
    match optional_secret(p, key, v, what) {
        Some(s) => s,
        None => {
            if !p.0.iter().any(|x| x.key == key) {
                p.add(key, format!("{what} is required"));
            }
            String::new()
        }
    }
}

/// A secret that may be absent (`previous_secret`): when given, as long as any other.
fn optional_secret(p: &mut Problems, key: &str, v: Option<String>, what: &str) -> Option<String> {
    let v = v.filter(|s| !s.is_empty())?;
    if v.chars().count() < MIN_SECRET_CHARS {
        p.add(
            key,
            format!(
                "{what} must be at least {MIN_SECRET_CHARS} characters (the value is not shown)"
            ),
        );
        return None;
    }
    Some(v)
}

/// Validates `[inbound]`. `twilio_providers` are the (name, auth token) of Twilio SMS
/// providers: each gets a Twilio endpoint of the same name unless one is configured, so the
/// status callbacks it asks for are verified with no extra setup.
pub(super) fn inbound(
    p: &mut Problems,
    raw: RawInbound,
    twilio_providers: &[(String, String)],
) -> Inbound {
    let format_text = raw
        .ticket_format
        .unwrap_or_else(|| "{year}/{seq:6}".to_owned());
    let ticket_format = TicketFormat::parse(&format_text).unwrap_or_else(|e| {
        p.add("inbound.ticket_format", e.to_string());
        TicketFormat::parse("{year}/{seq:6}").unwrap_or_else(|_| unreachable!())
    });
    let reply_address = reply_address(p, raw.reply_address);
    let (opt_out_keywords, opt_in_keywords) =
        opt_keywords(p, raw.opt_out_keywords, raw.opt_in_keywords);
    let mail_auth = mail_auth(p, raw.mail_auth.as_deref());
    let trusted_authserv_ids = trusted_authserv_ids(p, raw.trusted_authserv_ids);
    let endpoints = endpoints(p, raw.endpoints, twilio_providers);
    let imap = raw.imap.map(|r| imap(p, r));

    Inbound {
        ticket_format,
        reply_address,
        attachments_dir: PathBuf::from(
            raw.attachments_dir
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "data/attachments".to_owned()),
        ),
        max_attachment_bytes: ranged(
            p,
            "inbound.max_attachment_bytes",
            raw.max_attachment_bytes,
            10_485_760,
            0,
            1 << 30,
        ) as u64,
        max_mail_bytes: ranged(
            p,
            "inbound.max_mail_bytes",
            raw.max_mail_bytes,
            26_214_400,
            65_536,
            1 << 30,
        ) as usize,
        raw_retention_days: ranged(
            p,
            "inbound.raw_retention_days",
            raw.raw_retention_days,
            90,
            1,
            3650,
        ) as u32,
        hint_every_hours: ranged(
            p,
            "inbound.hint_every_hours",
            raw.hint_every_hours,
            24,
            1,
            8760,
        ) as u32,
        signature_tolerance_s: ranged(
            p,
            "inbound.signature_tolerance_s",
            raw.signature_tolerance_s,
            300,
            30,
            3600,
        ),
        opt_out_keywords,
        opt_in_keywords,
        mail_auth,
        trusted_authserv_ids,
        endpoints,
        imap,
    }
}

/// `inbound.reply_address`: a plain address, when given (empty is none).
fn reply_address(p: &mut Problems, raw: Option<String>) -> Option<String> {
    let reply_address = raw.filter(|s| !s.is_empty());
    if let Some(a) = &reply_address
        && (crate::domain::email::email_problem(a).is_some() || a.contains('+'))
    {
        p.add(
            "inbound.reply_address",
            format!(
                "{a:?} must be a plain e-mail address (the +<ticket> tag is added per message)"
            ),
        );
    }
    reply_address
}

/// `inbound.opt_out_keywords` and `inbound.opt_in_keywords`, upper-cased, none in both.
fn opt_keywords(
    p: &mut Problems,
    opt_out: Option<Vec<String>>,
    opt_in: Option<Vec<String>>,
) -> (Vec<String>, Vec<String>) {
    let opt_out_keywords = keywords(p, "inbound.opt_out_keywords", opt_out, OPT_OUT_DEFAULT);
    let opt_in_keywords = keywords(p, "inbound.opt_in_keywords", opt_in, OPT_IN_DEFAULT);
    if let Some(k) = opt_out_keywords
        .iter()
        .find(|k| opt_in_keywords.contains(k))
    {
        p.add(
            "inbound.opt_in_keywords",
            format!("{k:?} is also an opt-out keyword"),
        );
    }
    (opt_out_keywords, opt_in_keywords)
}

/// A list of keywords (`default` when absent), trimmed and upper-cased; none may be empty.
fn keywords(p: &mut Problems, key: &str, v: Option<Vec<String>>, default: &[&str]) -> Vec<String> {
    let list: Vec<String> = v
        .unwrap_or_else(|| default.iter().map(|s| (*s).to_owned()).collect())
        .into_iter()
        .map(|k| k.trim().to_uppercase())
        .collect();
    if list.iter().any(String::is_empty) {
        p.add(key, "keywords cannot be empty");
    }
    list
}

/// `inbound.mail_auth`: require (the default) or off.
fn mail_auth(p: &mut Problems, raw: Option<&str>) -> MailAuthMode {
    match raw {
        None => MailAuthMode::default(),
        Some(s) => MailAuthMode::parse(s).unwrap_or_else(|| {
            p.add(
                "inbound.mail_auth",
                format!("unknown mode {s:?}; expected require|off"),
            );
            MailAuthMode::default()
        }),
    }
}

/// `inbound.trusted_authserv_ids`: host names, lower-cased, each once.
fn trusted_authserv_ids(p: &mut Problems, raw: Option<Vec<String>>) -> Vec<String> {
    let mut trusted_authserv_ids: Vec<String> = Vec::new();
    for (i, id) in raw.unwrap_or_default().iter().enumerate() {
        let id = id.trim().to_ascii_lowercase();
        if id.is_empty()
            || id.len() > 255
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        {
            p.add(
                format!("inbound.trusted_authserv_ids[{i}]"),
                "expected the host name a receiving relay writes first in its \
                 Authentication-Results, like \"mx.comune.example.it\"",
            );
        } else if !trusted_authserv_ids.contains(&id) {
            trusted_authserv_ids.push(id);
        }
    }
    trusted_authserv_ids
}

/// `inbound.endpoints`, then a Twilio endpoint for each Twilio provider without one.
fn endpoints(
    p: &mut Problems,
    raw: Vec<RawEndpoint>,
    twilio_providers: &[(String, String)],
) -> Vec<Endpoint> {
    let mut endpoints: Vec<Endpoint> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let endpoint = endpoint(p, i, r, &endpoints);
        endpoints.push(endpoint);
    }
    for (name, auth_token) in twilio_providers {
        if !endpoints.iter().any(|e| &e.name == name) {
            endpoints.push(Endpoint {
                name: name.clone(),
                family: Family::Twilio {
                    auth_token: auth_token.clone(),
                },
                rate_per_s: 200,
            });
        }
    }
    endpoints
}

/// `inbound.endpoints[i]`: a name unique among `before`, a family and its secrets.
fn endpoint(p: &mut Problems, i: usize, r: RawEndpoint, before: &[Endpoint]) -> Endpoint {
    let k = |f: &str| format!("inbound.endpoints[{i}].{f}");
    let name = r.name.unwrap_or_default();
    if name.is_empty()
        || name.len() > 40
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        p.add(
            k("name"),
            "must be 1–40 letters, digits, - or _ (it is a URL segment)",
        );
    }
    if before.iter().any(|e| e.name == name) {
        p.add(k("name"), format!("{name:?} is used by another endpoint"));
    }
    let family = match r.family.as_deref().unwrap_or("") {
        "twilio" => Family::Twilio {
            auth_token: secret(p, &k("auth_token"), r.auth_token, "the Twilio auth token"),
        },
        "rest-it" => Family::RestIt {
            token: secret(p, &k("token"), r.token, "the URL token"),
        },
        "mail" => Family::Mail {
            token: secret(p, &k("token"), r.token, "the URL token"),
        },
        "generic" | "vonage" => {
            let mut secrets = vec![secret(p, &k("secret"), r.secret, "the signing secret")];
            if let Some(prev) = optional_secret(
                p,
                &k("previous_secret"),
                r.previous_secret,
                "the previous signing secret",
            ) {
                secrets.push(prev);
            }
            if r.family.as_deref() == Some("vonage") {
                Family::Vonage { secrets }
            } else {
                Family::Generic { secrets }
            }
        }
        other => {
            p.add(
                k("family"),
                format!("unknown family {other:?}; expected twilio|rest-it|generic|mail|vonage"),
            );
            Family::Mail {
                token: String::new(),
            }
        }
    };
    Endpoint {
        name,
        family,
        rate_per_s: ranged(p, &k("rate_per_s"), r.rate_per_s, 200, 1, 1_000_000) as u32,
    }
}

/// `[inbound.imap]`: the server, the account and how often it is polled.
fn imap(p: &mut Problems, r: RawImap) -> ImapPolling {
    let k = |f: &str| format!("inbound.imap.{f}");
    let host = r.host.filter(|s| !s.is_empty()).unwrap_or_else(|| {
        p.add(k("host"), "the IMAP server is required");
        String::new()
    });
    let security = match r.security.as_deref().unwrap_or("tls") {
        "tls" => ImapSecurity::Tls,
        "starttls" => ImapSecurity::StartTls,
        "plain" => ImapSecurity::Plain,
        other => {
            p.add(
                k("security"),
                format!("unknown security {other:?}; expected tls|starttls|plain"),
            );
            ImapSecurity::Tls
        }
    };
    let default_port = match security {
        ImapSecurity::Tls => 993,
        _ => 143,
    };
    let username = r.username.filter(|s| !s.is_empty()).unwrap_or_else(|| {
        p.add(k("username"), "the mailbox user is required");
        String::new()
    });
    let password = r.password.filter(|s| !s.is_empty()).unwrap_or_else(|| {
        p.add(
            k("password"),
            "the mailbox password is required (put it in MESSO_INBOUND__IMAP__PASSWORD_FILE)",
        );
        String::new()
    });
    ImapPolling {
        account: ImapAccount {
            host,
            port: ranged(p, &k("port"), r.port, default_port, 1, 65535) as u16,
            security,
            username,
            password,
            mailbox: r
                .mailbox
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "INBOX".to_owned()),
            processed_mailbox: r.processed_mailbox.filter(|s| !s.is_empty()),
            ca_bundle: r.ca_bundle.filter(|s| !s.is_empty()).map(PathBuf::from),
            timeout_s: ranged(p, &k("timeout_s"), r.timeout_s, 30, 1, 600) as u64,
            max_message_bytes: ranged(
                p,
                &k("max_message_bytes"),
                r.max_message_bytes,
                26_214_400,
                1024,
                1 << 30,
            ) as u64,
        },
        poll_interval_s: ranged(p, &k("poll_interval_s"), r.poll_interval_s, 60, 5, 86_400) as u64,
    }
}
