//! The configuration file (`config/messo.toml`), its environment overrides, and validation that
//! names the key of every problem.
//!
//! Every key can be overridden from the environment as `MESSO_<SECTION>__<KEY>` (more `__` for
//! deeper keys, a number to index an array: `MESSO_SLA__TARGETS__0__WORKING_DAYS=2`). A name
//! ending in `_FILE` reads the value from that file instead, the way systemd's `LoadCredential`
//! hands secrets over: `MESSO_DATABASE__URL_FILE=/run/credentials/messo.service/db-url`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::Deserialize;

use crate::calendar::{
    Calendar, CalendarError, CalendarSpec, Closure, ITALIAN_NATIONAL_HOLIDAYS, PatronDay, WEEKDAYS,
    Window,
};
use crate::domain::{Category, EmailAddress, Priority};
use crate::sla::{Amount, ClockKind, Policy, PolicyError, Sla, TargetRule};

mod admin;
mod delivery;
mod domicile;
mod http;
mod inbound;
mod io;
mod portal;
mod reports;
mod retention;
mod schema;
mod survey;
mod voice;
pub use admin::{Admin, TemplatesConfig};
pub use delivery::{
    Delivery, Dkim, DkimAlgorithm, Fallback, ProviderKind, RestItAuth, Security, Sms, SmsProvider,
    SmtpAccount,
};
pub use domicile::{Domicile, Inad, PDND_AUDIENCE, PDND_TOKEN_URL, Pdnd};
pub use http::HttpLimits;
pub use inbound::{Endpoint, Family, ImapAccount, ImapPolling, ImapSecurity, Inbound};
pub use io::{FeatureLevel, Io};
pub use portal::{MIN_LINK_KEY_CHARS, Portal};
pub use reports::{MonthlyReport, Reports};
pub use retention::{AUDIT_FLOOR_DAYS, Retention};
use schema::{Kind, Schema};
pub use survey::Survey;
pub use voice::{AccessCodePolicy, Outbound, SmsAnswers, Voice, VoiceProvider};

/// The shipped configuration (Roma Capitale), used when no file is given and
/// `config/messo.toml` does not exist in the working directory.
pub const BUILTIN_TOML: &str = include_str!("../config/messo.toml");

/// Where `--config` points by default.
pub const DEFAULT_PATH: &str = "config/messo.toml";

/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "MESSO_";

/// The shortest secret that verifies requests to us (webhook URL tokens, signing secrets and
/// the previous one while rotating, Twilio auth tokens). Portal link keys need
/// [`MIN_LINK_KEY_CHARS`].
pub const MIN_SECRET_CHARS: usize = 16;

/// One thing wrong with the configuration, at a key path like `sla.targets[2].priority`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{source_name} is not valid TOML: {message}")]
    Syntax {
        source_name: String,
        message: String,
    },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("{source_name}: {}", list(.problems))]
    Invalid {
        source_name: String,
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    match problems {
        [one] => one.to_string(),
        many => {
            let mut s = format!("{} problems", many.len());
            for p in many {
                s.push_str("\n  ");
                s.push_str(&p.to_string());
            }
            s
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The file as written.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    comune: RawComune,
    #[serde(default)]
    calendar: RawCalendar,
    #[serde(default)]
    sla: RawSla,
    #[serde(default)]
    database: RawDatabase,
    #[serde(default)]
    channels: RawChannels,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    notify: RawNotify,
    smtp: Option<delivery::RawSmtp>,
    pec: Option<delivery::RawSmtp>,
    #[serde(default)]
    sms: delivery::RawSms,
    #[serde(default)]
    delivery: delivery::RawDelivery,
    #[serde(default)]
    inbound: inbound::RawInbound,
    #[serde(default)]
    templates: admin::RawTemplates,
    #[serde(default)]
    admin: admin::RawAdmin,
    #[serde(default)]
    portal: portal::RawPortal,
    #[serde(default)]
    reports: reports::RawReports,
    #[serde(default)]
    survey: survey::RawSurvey,
    #[serde(default)]
    voice: voice::RawVoice,
    #[serde(default)]
    io: io::RawIo,
    #[serde(default)]
    domicile: domicile::RawDomicile,
    #[serde(default)]
    retention: retention::RawRetention,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    sender_email: Option<String>,
    office_email: Option<String>,
    supervisor_email: Option<String>,
    office_phone: Option<String>,
    sms_window: Option<String>,
    reminder_after_working_days: Option<i64>,
    max_reminders: Option<i64>,
    suspension_cap_days: Option<i64>,
    suspension_cap_outcome: Option<String>,
    last_warning_working_days: Option<i64>,
    staff_alerts_office_hours_only: Option<bool>,
    retention_days: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComune {
    name: Option<String>,
    #[serde(default)]
    privacy_url: Option<String>,
    #[serde(default)]
    accessibility_url: Option<String>,
    #[serde(default)]
    complaint_url: Option<String>,
    #[serde(default)]
    complaint_email: Option<String>,
    #[serde(default)]
    offices: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalendar {
    time_zone: Option<String>,
    national_holidays: Option<String>,
    windows: Option<RawWindows>,
    patron_day: Option<RawPatron>,
    #[serde(default)]
    closures: Vec<RawClosure>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindows {
    monday: Option<Vec<String>>,
    tuesday: Option<Vec<String>>,
    wednesday: Option<Vec<String>>,
    thursday: Option<Vec<String>>,
    friday: Option<Vec<String>>,
    saturday: Option<Vec<String>>,
    sunday: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPatron {
    date: String,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClosure {
    date: String,
    name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSla {
    hours_per_working_day: Option<i64>,
    warning_ratio: Option<f64>,
    targets: Option<Vec<RawTarget>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    category: String,
    priority: String,
    clock: String,
    working_days: Option<i64>,
    hours: Option<i64>,
    days: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: Option<String>,
    poll_interval_ms: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannels {
    email: Option<String>,
    sms: Option<String>,
    pec: Option<String>,
    file_dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<String>,
    public_base_url: Option<String>,
    #[serde(default)]
    tokens: Vec<RawToken>,
    max_connections: Option<i64>,
    header_read_timeout_s: Option<i64>,
    idle_timeout_s: Option<i64>,
    request_timeout_s: Option<i64>,
    parallel_hashes: Option<i64>,
    max_tracked_clients: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: String,
    id: Option<String>,
    hash: String,
    scopes: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// The configuration as the program uses it.

/// How a channel delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelMode {
    /// Write each message under `channels.file_dir`; nothing leaves the machine.
    File,
    /// E-mail through the `[smtp]` account.
    Smtp,
    /// PEC through the `[pec]` account.
    Pec,
    /// SMS through the `[sms]` providers.
    Http,
}

/// The `[channels]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channels {
    pub email: ChannelMode,
    pub sms: ChannelMode,
    /// Messages to a PEC address: the file, the `[smtp]` account, or the `[pec]` account.
    pub pec: ChannelMode,
    pub file_dir: PathBuf,
}

/// A token id: 1–32 characters among `a-z 0-9 -`.
pub fn valid_token_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Read,
    Write,
    /// The citizen feed for the administration's portal (`/api/v1/citizen/…`), and nothing else.
    Portal,
    /// Compliance reports and criticalities (`/api/v1/reports/…`), and nothing else.
    Reports,
}

/// An API token: its name, its id (the `<id>` of `messo_<id>_<secret>`), the argon2 PHC hash of
/// the whole token, and its scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub name: String,
    pub id: String,
    pub hash: String,
    pub scopes: Vec<Scope>,
}

/// The `[http]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http {
    pub listen: SocketAddr,
    /// The address citizens and providers reach us at (behind any TLS proxy).
    pub public_base_url: String,
    pub tokens: Vec<ApiToken>,
    /// Connections, timeouts, parallel hashes, rate limiter sizes.
    pub limits: HttpLimits,
}

pub use messo_core::engine::Notify;

/// The comune's pages and addresses citizens are pointed to (`[comune]`): the privacy notice,
/// the accessibility statement, and where to complain ("reclamo"). Each optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComuneLinks {
    pub privacy_url: Option<String>,
    pub accessibility_url: Option<String>,
    pub complaint_url: Option<String>,
    pub complaint_email: Option<String>,
}

/// The most offices `[comune.offices]` may name.
const MAX_OFFICES: usize = 500;

/// `[comune]`: the links, and the offices' names by code (into `notify.office_names`).
fn comune(p: &mut Problems, raw: &mut RawComune, notify: &mut Notify) -> ComuneLinks {
    let mut url = |key: &str, v: Option<String>| -> Option<String> {
        let v = v.filter(|v| !v.is_empty())?;
        let ok = (v.starts_with("https://") || v.starts_with("http://"))
            && v.len() <= 300
            && !v
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "\"'<>`{}".contains(c));
        if ok {
            Some(v)
        } else {
            p.add(
                key,
                format!("expected an http:// or https:// URL of at most 300 characters, without spaces or quotes; found {v:?}"),
            );
            None
        }
    };
    let privacy_url = url("comune.privacy_url", raw.privacy_url.take());
    let accessibility_url = url("comune.accessibility_url", raw.accessibility_url.take());
    let complaint_url = url("comune.complaint_url", raw.complaint_url.take());
    let complaint_email = raw
        .complaint_email
        .take()
        .filter(|v| !v.is_empty())
        .map(|v| notify_address(p, "comune.complaint_email", Some(v), "").to_string());
    let offices = std::mem::take(&mut raw.offices);
    if offices.len() > MAX_OFFICES {
        p.add(
            "comune.offices",
            format!("at most {MAX_OFFICES} offices, found {}", offices.len()),
        );
    }
    for (code, name) in offices.into_iter().take(MAX_OFFICES) {
        let name = name.trim().to_owned();
        if code.is_empty() || code.len() > 100 || name.is_empty() || name.chars().count() > 120 {
            p.add(
                format!("comune.offices.{code}"),
                "an office code of 1 to 100 characters and a name of 1 to 120",
            );
            continue;
        }
        notify.office_names.insert(code, name);
    }
    ComuneLinks {
        privacy_url,
        accessibility_url,
        complaint_url,
        complaint_email,
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from: a path, or `built-in` for the embedded default.
    pub source_name: String,
    pub comune_name: String,
    /// `[comune]`: the pages and addresses every citizen message links to.
    pub comune_links: ComuneLinks,
    pub calendar: CalendarSpec,
    pub policy: Policy,
    pub database_url: String,
    /// How often the daemon looks for direct writes and SLA instants that came due.
    pub poll_interval_ms: u64,
    pub channels: Channels,
    /// The e-mail account (`[smtp]`), when configured.
    pub smtp: Option<SmtpAccount>,
    /// The certified e-mail account (`[pec]`), when configured.
    pub pec: Option<SmtpAccount>,
    pub sms: Sms,
    pub delivery: Delivery,
    pub inbound: Inbound,
    pub http: Http,
    pub notify: Notify,
    pub templates: TemplatesConfig,
    pub admin: Admin,
    pub portal: Portal,
    /// The satisfaction question of the closure notice.
    pub survey: Survey,
    /// Scheduled reports: the monthly e-mail.
    pub reports: Reports,
    /// The phone and SMS answering backup.
    pub voice: Voice,
    /// The app IO channel, when enabled.
    pub io: Option<Io>,
    /// Where legally relevant notices go: the office's PEC record, INAD's domicile.
    pub domicile: Domicile,
    /// How long each kind of personal data is kept (`[retention]`).
    pub retention: Retention,
    /// Keys set from the environment, with the variable that set each.
    pub overrides: Vec<(String, String)>,
}

impl Config {
    /// Builds the calendar tables and bundles them with the policy.
    pub fn sla(&self) -> Result<Sla, CalendarError> {
        Ok(Sla::new(
            Calendar::new(self.calendar.clone())?,
            self.policy.clone(),
        ))
    }

    /// Reads a configuration file, applies the process environment, validates.
    pub fn from_path(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text, &path.display().to_string(), std::env::vars())
    }

    /// The file named by `--config`, else `config/messo.toml` when it exists, else the
    /// built-in default (Roma Capitale). Environment overrides apply in every case.
    pub fn discover(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        match explicit {
            Some(p) => Config::from_path(p),
            None if Path::new(DEFAULT_PATH).exists() => Config::from_path(Path::new(DEFAULT_PATH)),
            None => Config::from_toml(BUILTIN_TOML, "built-in", std::env::vars()),
        }
    }

    /// Parses `text`, applies the `MESSO_…` variables among `env`, validates.
    pub fn from_toml(
        text: &str,
        source_name: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        // toml's own message quotes the offending line, which may hold a secret: only where
        // and what.
        let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            source_name: source_name.to_owned(),
            message: match e.span() {
                Some(span) => {
                    let (line, column) = line_column(text, span.start);
                    format!(
                        "line {line}, column {column}: {} (the line is not shown: it may hold a secret)",
                        e.message().trim_end()
                    )
                }
                None => e.message().trim_end().to_owned(),
            },
        })?;
        let mut root = toml::Value::Table(std::mem::take(&mut table));
        let overrides = apply_env(&mut root, env, |p| std::fs::read_to_string(p))?;
        let set_by = |problems: &mut Vec<Problem>| {
            for problem in problems.iter_mut() {
                if let Some((_, var)) = overrides.iter().find(|(k, _)| *k == problem.key) {
                    problem.message.push_str(&format!(" (set by {var})"));
                }
            }
        };
        let mut wrong_types = type_problems(schema(), &root, "", "");
        if !wrong_types.is_empty() {
            set_by(&mut wrong_types);
            return Err(ConfigError::Invalid {
                source_name: source_name.to_owned(),
                problems: wrong_types,
            });
        }
        let raw: RawConfig = serde_path_to_error::deserialize(root).map_err(|e| {
            let mut key = e.path().to_string();
            if key == "." {
                key = "(top level)".to_owned();
            }
            let mut message = without_value(&e.inner().to_string());
            if let Some((_, var)) = overrides.iter().find(|(k, _)| *k == key) {
                message.push_str(&format!(" (set by {var})"));
            }
            ConfigError::Invalid {
                source_name: source_name.to_owned(),
                problems: vec![Problem { key, message }],
            }
        })?;
        validate(raw, source_name, overrides)
    }
}

// ---------------------------------------------------------------------------------------------
// Environment overrides.

/// The shape of the configuration file, traced once from the `Raw…` types.
fn schema() -> &'static Schema {
    static SCHEMA: std::sync::OnceLock<Schema> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::of::<RawConfig>().unwrap_or_else(|e| {
            // Unreachable while the unit test of the shape passes; keys then default to strings.
            tracing::error!(error = %e, "the configuration's shape could not be traced");
            Schema::default()
        })
    })
}

/// The value of an override, typed by the key it sets (`kind`, from the schema): a string key
/// takes the text as it is, whatever it looks like. Messages never repeat the text.
fn env_value(kind: Option<Kind>, raw: &str) -> Result<toml::Value, String> {
    use toml::Value as V;
    let literal = || -> Option<V> {
        let t: toml::Table = toml::from_str(&format!("v = {raw}")).ok()?;
        t.get("v").cloned()
    };
    let expected = |k: Kind| format!("expected {} (the value is not shown)", k.describe());
    match kind {
        None | Some(Kind::Str | Kind::Any) => Ok(V::String(raw.to_owned())),
        Some(k @ Kind::Int) => raw
            .trim()
            .parse::<i64>()
            .map(V::Integer)
            .map_err(|_| expected(k)),
        Some(k @ Kind::Float) => raw
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(V::Float)
            .ok_or_else(|| expected(k)),
        Some(k @ Kind::Bool) => match raw.trim() {
            "true" => Ok(V::Boolean(true)),
            "false" => Ok(V::Boolean(false)),
            _ => Err(expected(k)),
        },
        Some(k @ (Kind::Seq | Kind::Map | Kind::Table)) => match literal() {
            Some(v) if k.admits(&v) => Ok(v),
            _ => Err(format!(
                "expected {} written as a TOML literal, like {} (the value is not shown)",
                k.describe(),
                if k == Kind::Seq {
                    "[\"a\", \"b\"]"
                } else {
                    "{ key = \"value\" }"
                }
            )),
        },
    }
}

/// Applies `MESSO_…__…` variables to the parsed file; returns (key path, variable) for each.
fn apply_env(
    root: &mut toml::Value,
    env: impl IntoIterator<Item = (String, String)>,
    read_file: impl Fn(&Path) -> std::io::Result<String>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k.contains("__"))
        .collect();
    vars.sort();
    let schema = schema();
    let mut applied = Vec::new();
    for (var, value) in vars {
        let env_err = |message: String| ConfigError::Env {
            var: var.clone(),
            message,
        };
        let (key, value) = env_key_value(&var, value, &read_file).map_err(env_err)?;
        let segments = env_segments(key).map_err(env_err)?;
        let path = set_override(schema, root, &segments, &value).map_err(env_err)?;
        applied.push((path, var.clone()));
    }
    Ok(applied)
}

/// The key part of variable `var` (after `MESSO_`, without `_FILE`) and its value: `value`
/// itself, or for a `_FILE` variable the text of the file it names, less one final line end.
fn env_key_value<'v>(
    var: &'v str,
    value: String,
    read_file: &impl Fn(&Path) -> std::io::Result<String>,
) -> Result<(&'v str, String), String> {
    let rest = &var[ENV_PREFIX.len()..];
    match rest.strip_suffix("_FILE") {
        Some(key) => {
            let path = Path::new(&value);
            let text =
                read_file(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            let text = text.strip_suffix('\r').unwrap_or(text).to_owned();
            Ok((key, text))
        }
        None => Ok((rest, value)),
    }
}

/// `SLA__TARGETS__0__WORKING_DAYS` → `["sla", "targets", "0", "working_days"]`.
fn env_segments(key: &str) -> Result<Vec<String>, String> {
    let segments: Vec<String> = key.split("__").map(str::to_ascii_lowercase).collect();
    if segments.iter().any(|s| {
        s.is_empty()
            || !s
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    }) {
        return Err(
            "expected MESSO_<SECTION>__<KEY> with letters, digits and single underscores"
                .to_owned(),
        );
    }
    Ok(segments)
}

/// Sets the key named by `segments` to `value` (typed by the schema), creating the tables on
/// the way; returns the key path as problems name it (`sla.targets[0].working_days`).
fn set_override(
    schema: &Schema,
    root: &mut toml::Value,
    segments: &[String],
    value: &str,
) -> Result<String, String> {
    let mut path = String::new();
    // The key's pattern in the schema: list indexes become `[]`, a map's keys `*`.
    let mut pattern = String::new();
    let mut node: &mut toml::Value = root;
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match node {
            toml::Value::Table(t) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(seg);
                pattern = schema.child(&pattern, seg);
                if last {
                    t.insert(seg.clone(), env_value(schema.kind(&pattern), value)?);
                    break;
                }
                let empty = match schema.kind(&pattern) {
                    Some(Kind::Seq) => toml::Value::Array(Vec::new()),
                    _ => toml::Value::Table(toml::Table::new()),
                };
                node = t.entry(seg.clone()).or_insert(empty);
            }
            toml::Value::Array(items) => {
                let Some(slot) = seg.parse::<usize>().ok().filter(|&n| n < items.len()) else {
                    return Err(format!(
                        "{path} has {} entries; {seg:?} is not one of their indexes",
                        items.len()
                    ));
                };
                path.push_str(&format!("[{slot}]"));
                pattern = Schema::item(&pattern);
                if last {
                    items[slot] = env_value(schema.kind(&pattern), value)?;
                    break;
                }
                node = &mut items[slot];
            }
            _ => {
                return Err(format!("{path} is a single value; it has no key {seg:?}"));
            }
        }
    }
    Ok(path)
}

/// Every value whose type is not the one its key takes, named by key and type only (the
/// text may be a secret). Keys the schema does not know are left to the deserializer, which
/// names them as unknown.
fn type_problems(schema: &Schema, value: &toml::Value, pattern: &str, path: &str) -> Vec<Problem> {
    let mut out = Vec::new();
    let Some(kind) = schema.kind(pattern) else {
        return out;
    };
    if !kind.admits(value) {
        out.push(Problem {
            key: if path.is_empty() {
                "(top level)".to_owned()
            } else {
                path.to_owned()
            },
            message: format!(
                "expected {}, found {}",
                kind.describe(),
                schema::type_name(value)
            ),
        });
        return out;
    }
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let child = schema.child(pattern, k);
                let at = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                out.extend(type_problems(schema, v, &child, &at));
            }
        }
        toml::Value::Array(items) => {
            let child = Schema::item(pattern);
            for (i, v) in items.iter().enumerate() {
                out.extend(type_problems(schema, v, &child, &format!("{path}[{i}]")));
            }
        }
        _ => {}
    }
    out
}

/// A deserializer's message without the value it quotes (`invalid type: integer `123`,
/// expected a string` names the type it expected, not the text, which may be a secret).
fn without_value(message: &str) -> String {
    for prefix in ["invalid type", "invalid value", "invalid length"] {
        if let Some(rest) = message.strip_prefix(prefix) {
            return match rest.rsplit_once(", expected ") {
                Some((_, expected)) => format!("{prefix}, expected {expected}"),
                None => prefix.to_owned(),
            };
        }
    }
    message.to_owned()
}

/// Line and column (from 1) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
    (line, column)
}

// ---------------------------------------------------------------------------------------------
// Validation.

struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    /// A whole number between `lo` and `hi`, `default` when absent; out of range is a problem
    /// named by `key` (and `default` stands in, so validation can go on).
    fn ranged(&mut self, key: &str, v: Option<i64>, default: i64, lo: i64, hi: i64) -> i64 {
        match v.unwrap_or(default) {
            x if (lo..=hi).contains(&x) => x,
            x => {
                self.add(key, format!("must be between {lo} and {hi}, found {x}"));
                default
            }
        }
    }
}

fn parse_hm(text: &str) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return None;
    }
    Some(h * 60 + m)
}

fn parse_window(text: &str) -> Result<Window, String> {
    let bad = || format!("expected a window like \"09:00-17:00\", found {text:?}");
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let (Some(start), Some(end)) = (parse_hm(a.trim()), parse_hm(b.trim())) else {
        return Err(bad());
    };
    if start >= end {
        return Err(format!("window {text:?} must end after it starts"));
    }
    Ok(Window {
        start_min: start,
        end_min: end,
    })
}

fn validate(
    raw: RawConfig,
    source_name: &str,
    overrides: Vec<(String, String)>,
) -> Result<Config, ConfigError> {
    let mut p = Problems(Vec::new());
    let calendar = calendar(&mut p, raw.calendar);
    let policy = sla_policy(&mut p, raw.sla);
    let (database_url, poll_interval_ms) = database(&mut p, raw.database);
    let channels = channels(&mut p, raw.channels);
    let (smtp, pec_account) = mail_accounts(&mut p, &channels, raw.smtp, raw.pec);
    let sms_cfg = sms_config(&mut p, &channels, raw.sms);
    let delivery_cfg = delivery::delivery(&mut p, raw.delivery);
    let inbound_cfg = inbound::inbound(&mut p, raw.inbound, &twilio_providers(&sms_cfg));
    let http_cfg = http_config(&mut p, raw.http);
    let mut notify = notify(&mut p, raw.notify);
    let domicile = domicile::domicile(&mut p, raw.domicile);
    let retention = retention::retention(&mut p, raw.retention, notify.retention_days);
    notify.routing.office_record_is_domicile = domicile.office_record;
    let mut raw_comune = raw.comune;
    let comune_links = comune(&mut p, &mut raw_comune, &mut notify);
    let comune_name = raw_comune.name.unwrap_or_else(|| "Comune".to_owned());
    let templates = admin::templates(&mut p, raw.templates);
    let admin = admin::admin(&mut p, raw.admin);
    let portal = portal::portal(&mut p, raw.portal, &http_cfg.public_base_url);
    let survey = survey::survey(&mut p, raw.survey);
    let reports = reports::reports(&mut p, raw.reports, &notify);
    let voice = voice::voice(&mut p, raw.voice);
    let io = io::io(&mut p, raw.io);
    notify.routing.io_kinds = io.as_ref().map(|i| i.kinds.clone()).unwrap_or_default();
    // The `voice` link and `[voice.outbound]` go together.
    let calls = delivery_cfg.fallback.contains(&delivery::Fallback::Voice);
    if calls && voice.outbound.is_none() {
        p.add(
            "delivery.fallback",
            "lists \"voice\" but [voice.outbound] is not enabled (voice.outbound.enabled = true)",
        );
    }
    if !calls && voice.outbound.is_some() {
        p.add(
            "voice.outbound.enabled",
            "no call is ever placed: add \"voice\" to [delivery] fallback, after \"sms\" and \"email\" and before \"office\"",
        );
    }

    match policy {
        Some(policy) if p.0.is_empty() => Ok(Config {
            source_name: source_name.to_owned(),
            comune_name,
            comune_links,
            calendar,
            policy,
            database_url,
            poll_interval_ms,
            channels,
            smtp,
            pec: pec_account,
            sms: sms_cfg,
            delivery: delivery_cfg,
            inbound: inbound_cfg,
            http: http_cfg,
            notify,
            templates,
            admin,
            portal,
            survey,
            reports,
            voice,
            io,
            domicile,
            retention,
            overrides,
        }),
        _ => {
            // Mention the variable that set a faulty key.
            for problem in &mut p.0 {
                if let Some((_, var)) = overrides.iter().find(|(k, _)| *k == problem.key) {
                    problem.message.push_str(&format!(" (set by {var})"));
                }
            }
            Err(ConfigError::Invalid {
                source_name: source_name.to_owned(),
                problems: p.0,
            })
        }
    }
}

/// `[calendar]`: the time zone, the holidays, the weekly windows, the patron day, closures.
fn calendar(p: &mut Problems, raw: RawCalendar) -> CalendarSpec {
    let tz_name = raw.time_zone.as_deref().unwrap_or("Europe/Rome");
    let time_zone = tz_name.parse::<Tz>().unwrap_or_else(|_| {
        p.add(
            "calendar.time_zone",
            format!("unknown time zone {tz_name:?}; expected an IANA name like \"Europe/Rome\""),
        );
        chrono_tz::Europe::Rome
    });
    let national = match raw.national_holidays.as_deref().unwrap_or("italia") {
        "italia" => ITALIAN_NATIONAL_HOLIDAYS.to_vec(),
        "none" => Vec::new(),
        other => {
            p.add(
                "calendar.national_holidays",
                format!("unknown holiday set {other:?}; expected italia|none"),
            );
            Vec::new()
        }
    };
    let weekly = match raw.windows {
        None => CalendarSpec::roma_capitale().weekly,
        Some(w) => weekly_windows(p, w),
    };
    let patron = raw.patron_day.and_then(|pd| patron_day(p, pd));
    let closures = closures(p, raw.closures);
    CalendarSpec {
        time_zone,
        weekly,
        national,
        patron,
        closures,
    }
}

/// `calendar.windows`: each weekday's windows, in order and without overlaps.
fn weekly_windows(p: &mut Problems, w: RawWindows) -> [Vec<Window>; 7] {
    let days = [
        w.monday,
        w.tuesday,
        w.wednesday,
        w.thursday,
        w.friday,
        w.saturday,
        w.sunday,
    ];
    let mut weekly: [Vec<Window>; 7] = Default::default();
    for (wd, list) in days.into_iter().enumerate() {
        for (i, text) in list.unwrap_or_default().iter().enumerate() {
            let key = format!("calendar.windows.{}[{i}]", WEEKDAYS[wd]);
            match parse_window(text) {
                Ok(win) => {
                    if let Some(prev) = weekly[wd].last()
                        && win.start_min < prev.end_min
                    {
                        p.add(
                            key,
                            format!(
                                "window {text:?} overlaps or comes before the previous one; list windows in order without overlaps"
                            ),
                        );
                    } else {
                        weekly[wd].push(win);
                    }
                }
                Err(m) => p.add(key, m),
            }
        }
    }
    if weekly.iter().all(Vec::is_empty) {
        p.add(
            "calendar.windows",
            "no working window on any weekday; a business clock could never advance",
        );
    }
    weekly
}

/// `calendar.patron_day`: a month and day (`06-29`) and a name.
fn patron_day(p: &mut Problems, pd: RawPatron) -> Option<PatronDay> {
    let parsed = pd
        .date
        .split_once('-')
        .and_then(|(m, d)| Some((m.parse::<u32>().ok()?, d.parse::<u32>().ok()?)))
        .filter(|&(m, d)| {
            pd.date.len() == 5
                && (1..=12).contains(&m)
                && d >= 1
                && d <= crate::time::days_in_month(2000, m)
        });
    match parsed {
        Some((month, day)) if !pd.name.trim().is_empty() => Some(PatronDay {
            month,
            day,
            name: pd.name,
        }),
        Some(_) => {
            p.add("calendar.patron_day.name", "must not be empty");
            None
        }
        None => {
            p.add(
                "calendar.patron_day.date",
                format!(
                    "expected a month and day like \"06-29\", found {:?}",
                    pd.date
                ),
            );
            None
        }
    }
}

/// `calendar.closures`: dated closures within the supported years, each with a name.
fn closures(p: &mut Problems, raw: Vec<RawClosure>) -> Vec<Closure> {
    let mut closures = Vec::new();
    for (i, c) in raw.into_iter().enumerate() {
        match NaiveDate::parse_from_str(&c.date, "%Y-%m-%d") {
            Ok(date) if (1970..=2199).contains(&chrono::Datelike::year(&date)) => {
                if c.name.trim().is_empty() {
                    p.add(format!("calendar.closures[{i}].name"), "must not be empty");
                } else {
                    closures.push(Closure { date, name: c.name });
                }
            }
            Ok(_) => p.add(
                format!("calendar.closures[{i}].date"),
                format!("{:?} is outside the supported years 1970–2199", c.date),
            ),
            Err(_) => p.add(
                format!("calendar.closures[{i}].date"),
                format!("expected a date like \"2026-12-24\", found {:?}", c.date),
            ),
        }
    }
    closures
}

/// `[sla]`: the policy, or None when it has a problem (each one is in `p`).
fn sla_policy(p: &mut Problems, raw: RawSla) -> Option<Policy> {
    let hours = p.ranged(
        "sla.hours_per_working_day",
        raw.hours_per_working_day,
        8,
        1,
        24,
    ) as u32;
    let warning_bp = warning_bp(p, raw.warning_ratio.unwrap_or(0.75));
    match raw.targets {
        None => Policy::new(
            Policy::agreement_default().rules().to_vec(),
            hours,
            warning_bp,
        )
        .ok(),
        Some(rows) => target_policy(p, rows, hours, warning_bp),
    }
}

/// `sla.warning_ratio` in ten-thousandths: above 0, at most 1, at most four decimals.
fn warning_bp(p: &mut Problems, ratio: f64) -> u32 {
    let bp = (ratio * 10_000.0).round();
    if !(ratio > 0.0 && ratio <= 1.0) {
        p.add(
            "sla.warning_ratio",
            format!("must be greater than 0 and at most 1, found {ratio}"),
        );
        7_500
    } else if (ratio * 10_000.0 - bp).abs() > 1e-6 {
        p.add(
            "sla.warning_ratio",
            format!("use at most four decimal places, found {ratio}"),
        );
        7_500
    } else {
        bp as u32
    }
}

/// `sla.targets`: every row checked on its own, then the table as a whole.
fn target_policy(
    p: &mut Problems,
    rows: Vec<RawTarget>,
    hours: u32,
    warning_bp: u32,
) -> Option<Policy> {
    let before = p.0.len();
    let rules: Vec<(usize, TargetRule)> = rows
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| target_rule(p, i, r).map(|rule| (i, rule)))
        .collect();
    if p.0.len() > before {
        return None;
    }
    let index: Vec<usize> = rules.iter().map(|(i, _)| *i).collect();
    match Policy::new(
        rules.into_iter().map(|(_, r)| r).collect(),
        hours,
        warning_bp,
    ) {
        Ok(policy) => Some(policy),
        Err(PolicyError::Rule { rule, message }) => {
            p.add(format!("sla.targets[{}]", index[rule]), message);
            None
        }
        Err(e) => {
            p.add("sla.targets", e.to_string());
            None
        }
    }
}

fn target_key(i: usize, field: &str) -> String {
    format!("sla.targets[{i}].{field}")
}

/// One row of `sla.targets`, or None when it has a problem.
fn target_rule(p: &mut Problems, i: usize, r: RawTarget) -> Option<TargetRule> {
    let category = any_or::<Category>(p, i, "category", &r.category);
    let priority = any_or::<Priority>(p, i, "priority", &r.priority);
    let clock = match r.clock.as_str() {
        "business" => Some(ClockKind::Business),
        "calendar" => Some(ClockKind::Calendar),
        "on_site" => Some(ClockKind::OnSite),
        other => {
            p.add(
                target_key(i, "clock"),
                format!("unknown clock {other:?}; expected business|calendar|on_site"),
            );
            None
        }
    };
    let amount = target_amount(p, i, &r);
    Some(TargetRule {
        category: category?,
        priority: priority?,
        clock: clock?,
        amount: amount?,
    })
}

/// `any` (Some(None)), a value of `T` (Some(Some)), or a problem at `field` (None).
fn any_or<T>(p: &mut Problems, i: usize, field: &str, text: &str) -> Option<Option<T>>
where
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    match text {
        "any" => Some(None),
        s => match s.parse::<T>() {
            Ok(v) => Some(Some(v)),
            Err(e) => {
                p.add(target_key(i, field), format!("{e}|any"));
                None
            }
        },
    }
}

/// Exactly one of `working_days`, `hours` or `days`, from 1 to 3650.
fn target_amount(p: &mut Problems, i: usize, r: &RawTarget) -> Option<Amount> {
    let amounts: Vec<(&str, i64)> = [
        ("working_days", r.working_days),
        ("hours", r.hours),
        ("days", r.days),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    match amounts.as_slice() {
        [(unit, n)] if (1..=3650).contains(n) => {
            let n = *n as u32;
            Some(match *unit {
                "working_days" => Amount::WorkingDays(n),
                "hours" => Amount::Hours(n),
                _ => Amount::Days(n),
            })
        }
        [(unit, n)] => {
            p.add(
                target_key(i, unit),
                format!("must be between 1 and 3650, found {n}"),
            );
            None
        }
        _ => {
            p.add(
                format!("sla.targets[{i}]"),
                "give exactly one of working_days, hours or days",
            );
            None
        }
    }
}

/// `[database]`: the URL (SQLite or PostgreSQL) and the poll interval.
fn database(p: &mut Problems, raw: RawDatabase) -> (String, u64) {
    let database_url = raw
        .url
        .unwrap_or_else(|| "sqlite://data/messo.db".to_owned());
    if !["sqlite:", "postgres://", "postgresql://"]
        .iter()
        .any(|s| database_url.starts_with(s))
    {
        p.add(
            "database.url",
            "expected a sqlite: or postgres:// URL (the value is not shown: it may hold a password)",
        );
    }
    let poll_interval_ms = p.ranged(
        "database.poll_interval_ms",
        raw.poll_interval_ms,
        2_000,
        50,
        600_000,
    ) as u64;
    (database_url, poll_interval_ms)
}

/// `[channels]`: how each channel delivers, and where the file channel writes.
fn channels(p: &mut Problems, raw: RawChannels) -> Channels {
    let email = channel_mode(
        p,
        "channels.email",
        raw.email,
        "file",
        &[("file", ChannelMode::File), ("smtp", ChannelMode::Smtp)],
    );
    let sms = channel_mode(
        p,
        "channels.sms",
        raw.sms,
        "file",
        &[("file", ChannelMode::File), ("http", ChannelMode::Http)],
    );
    let pec_default = if email == ChannelMode::Smtp {
        "smtp"
    } else {
        "file"
    };
    let pec = channel_mode(
        p,
        "channels.pec",
        raw.pec,
        pec_default,
        &[
            ("file", ChannelMode::File),
            ("smtp", ChannelMode::Smtp),
            ("pec", ChannelMode::Pec),
        ],
    );
    let file_dir = PathBuf::from(raw.file_dir.unwrap_or_else(|| "data/outbox".to_owned()));
    Channels {
        email,
        sms,
        pec,
        file_dir,
    }
}

/// One of the `allowed` modes (`default` when absent); the file channel after a problem.
fn channel_mode(
    p: &mut Problems,
    key: &str,
    value: Option<String>,
    default: &str,
    allowed: &[(&str, ChannelMode)],
) -> ChannelMode {
    let v = value.unwrap_or_else(|| default.to_owned());
    match allowed.iter().find(|(name, _)| *name == v) {
        Some((_, m)) => *m,
        None => {
            let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
            p.add(
                key,
                format!("unknown channel mode {v:?}; expected {}", names.join("|")),
            );
            ChannelMode::File
        }
    }
}

/// The `[smtp]` and `[pec]` accounts, each required when a channel sends through it.
fn mail_accounts(
    p: &mut Problems,
    channels: &Channels,
    smtp: Option<delivery::RawSmtp>,
    pec: Option<delivery::RawSmtp>,
) -> (Option<SmtpAccount>, Option<SmtpAccount>) {
    let smtp = smtp.map(|r| delivery::smtp(p, "smtp", r));
    let pec_account = pec.map(|r| delivery::smtp(p, "pec", r));
    if (channels.email == ChannelMode::Smtp || channels.pec == ChannelMode::Smtp) && smtp.is_none()
    {
        p.add(
            "smtp.host",
            "channels.email = \"smtp\" needs an [smtp] section",
        );
    }
    if channels.pec == ChannelMode::Pec {
        match &pec_account {
            None => p.add("pec.host", "channels.pec = \"pec\" needs a [pec] section"),
            Some(a) if a.sender.is_none() => p.add(
                "pec.sender",
                "the PEC mailbox messages are sent from is required",
            ),
            Some(_) => {}
        }
    }
    (smtp, pec_account)
}

/// `[sms]`, with at least one provider when `channels.sms = "http"`.
fn sms_config(p: &mut Problems, channels: &Channels, raw: delivery::RawSms) -> Sms {
    let sms_cfg = delivery::sms(p, raw);
    if channels.sms == ChannelMode::Http && sms_cfg.providers.is_empty() {
        p.add(
            "sms.providers",
            "channels.sms = \"http\" needs at least one [[sms.providers]] entry",
        );
    }
    sms_cfg
}

/// The (name, auth token) of each Twilio SMS provider, whose callbacks `[inbound]` verifies.
fn twilio_providers(sms: &Sms) -> Vec<(String, String)> {
    sms.providers
        .iter()
        .filter_map(|pr| match &pr.kind {
            ProviderKind::Twilio { auth_token, .. } => Some((pr.name.clone(), auth_token.clone())),
            _ => None,
        })
        .collect()
}

/// `[http]`: the address to listen on, the public URL, the API tokens and the limits.
fn http_config(p: &mut Problems, raw: RawHttp) -> Http {
    let listen_text = raw.listen.unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
        p.add(
            "http.listen",
            format!("expected an address like \"127.0.0.1:8080\", found {listen_text:?}"),
        );
        SocketAddr::from(([127, 0, 0, 1], 8080))
    });
    let public_base_url = raw
        .public_base_url
        .unwrap_or_else(|| format!("http://{listen}"));
    if !(public_base_url.starts_with("http://") || public_base_url.starts_with("https://"))
        || public_base_url.ends_with('/')
    {
        p.add(
            "http.public_base_url",
            format!(
                "expected an http:// or https:// URL without a trailing slash, found {public_base_url:?}"
            ),
        );
    }
    let tokens = api_tokens(p, raw.tokens);
    let limits = http::limits(
        p,
        http::RawLimits {
            max_connections: raw.max_connections,
            header_read_timeout_s: raw.header_read_timeout_s,
            idle_timeout_s: raw.idle_timeout_s,
            request_timeout_s: raw.request_timeout_s,
            parallel_hashes: raw.parallel_hashes,
            max_tracked_clients: raw.max_tracked_clients,
        },
    );
    Http {
        listen,
        public_base_url,
        tokens,
        limits,
    }
}

/// `http.tokens`: unique names and ids, argon2 hashes, known scopes.
fn api_tokens(p: &mut Problems, raw: Vec<RawToken>) -> Vec<ApiToken> {
    let mut tokens: Vec<ApiToken> = Vec::new();
    for (i, t) in raw.into_iter().enumerate() {
        let key = |f: &str| format!("http.tokens[{i}].{f}");
        if t.name.trim().is_empty() || tokens.iter().any(|o| o.name == t.name) {
            p.add(key("name"), "must be present and unique");
        }
        let id = t.id.unwrap_or_default();
        if id.is_empty() {
            p.add(
                key("id"),
                "missing: a token is now messo_<id>_<secret> and its id goes here; tokens of the \
                 old form (messo_<secret>, no id) are refused: make a new one with \
                 `messo token new --name <name>` and replace this entry",
            );
        } else if !valid_token_id(&id) {
            p.add(key("id"), "expected 1-32 characters among a-z 0-9 -");
        } else if tokens.iter().any(|o| o.id == id) {
            p.add(key("id"), format!("{id:?} is the id of another token"));
        }
        if argon2::password_hash::phc::PasswordHash::new(&t.hash).is_err()
            || !t.hash.starts_with("$argon2")
        {
            p.add(
                key("hash"),
                "expected an argon2 PHC string ($argon2id$v=19$...); make one with `messo token new`",
            );
        }
        let scopes = scopes(p, i, &t.scopes);
        tokens.push(ApiToken {
            name: t.name,
            id,
            hash: t.hash,
            scopes,
        });
    }
    tokens
}

/// `http.tokens[i].scopes`: read, write, portal or reports.
fn scopes(p: &mut Problems, i: usize, raw: &[String]) -> Vec<Scope> {
    let mut scopes = Vec::new();
    for (j, s) in raw.iter().enumerate() {
        match s.as_str() {
            "read" => scopes.push(Scope::Read),
            "write" => scopes.push(Scope::Write),
            "portal" => scopes.push(Scope::Portal),
            "reports" => scopes.push(Scope::Reports),
            other => p.add(
                format!("http.tokens[{i}].scopes[{j}]"),
                format!("unknown scope {other:?}; expected read|write|portal|reports"),
            ),
        }
    }
    scopes
}

/// `[notify]`: the addresses, the SMS window, reminders, the suspension cap and retention.
fn notify(p: &mut Problems, n: RawNotify) -> Notify {
    let sender_email = notify_email(
        p,
        "notify.sender_email",
        n.sender_email,
        "urp@comune.example.it",
    );
    let office_email = notify_address(
        p,
        "notify.office_email",
        n.office_email,
        "urp@comune.example.it",
    );
    let supervisor_email = n
        .supervisor_email
        .map(|v| notify_address(p, "notify.supervisor_email", Some(v), ""));
    let sms_text = n.sms_window.unwrap_or_else(|| "08:00-20:00".to_owned());
    let sms_window = parse_window(&sms_text).unwrap_or_else(|m| {
        p.add("notify.sms_window", m);
        Window::hm((8, 0), (20, 0))
    });
    let reminder_after_working_days = p.ranged(
        "notify.reminder_after_working_days",
        n.reminder_after_working_days,
        5,
        0,
        60,
    ) as u32;
    let max_reminders = p.ranged("notify.max_reminders", n.max_reminders, 2, 0, 10) as u32;
    let suspension_cap_days = p.ranged(
        "notify.suspension_cap_days",
        n.suspension_cap_days,
        30,
        0,
        365,
    ) as u32;
    let retention_days = p.ranged("notify.retention_days", n.retention_days, 365, 1, 3650) as u32;
    let last_warning_working_days = p.ranged(
        "notify.last_warning_working_days",
        n.last_warning_working_days,
        3,
        0,
        20,
    ) as u32;
    let close_at_suspension_cap = match n.suspension_cap_outcome.as_deref().unwrap_or("office") {
        "office" => false,
        "close" => true,
        other => {
            p.add(
                "notify.suspension_cap_outcome",
                format!("unknown outcome {other:?}; expected office|close"),
            );
            false
        }
    };
    Notify {
        sender_email,
        office_email,
        supervisor_email,
        office_phone: n.office_phone.unwrap_or_else(|| "060606".to_owned()),
        sms_window,
        reminder_after_working_days,
        max_reminders,
        suspension_cap_days,
        close_at_suspension_cap,
        last_warning_working_days,
        office_names: BTreeMap::new(),
        staff_alerts_office_hours_only: n.staff_alerts_office_hours_only.unwrap_or(true),
        retention_days,
        routing: Default::default(),
    }
}

/// An e-mail address of `[notify]` (`default` when absent); a problem names what is wrong.
fn notify_email(p: &mut Problems, key: &str, v: Option<String>, default: &str) -> String {
    let v = v.unwrap_or_else(|| default.to_owned());
    if let Some(why) = crate::domain::email::email_problem(&v) {
        p.add(key, format!("{v:?} {why}"));
    }
    v
}

/// An e-mail address of `[notify]` messages are sent to, parsed (`default` when absent); a
/// problem names what is wrong, and the built-in office address stands in for it (the
/// configuration is refused anyway).
fn notify_address(p: &mut Problems, key: &str, v: Option<String>, default: &str) -> EmailAddress {
    let v = notify_email(p, key, v, default);
    EmailAddress::parse(&v).unwrap_or_else(|_| builtin_office())
}

/// The office address of the built-in configuration.
fn builtin_office() -> EmailAddress {
    EmailAddress::parse("urp@comune.example.it").expect("the built-in address is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    fn problems(text: &str) -> Vec<Problem> {
        match Config::from_toml(text, "test.toml", no_env()) {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn the_comune_s_links_and_offices_are_checked_by_key() {
        let ok = Config::from_toml(
            "[comune]\nname = \"Comune di Prova\"\nprivacy_url = \"https://www.prova.it/privacy\"\n\
             complaint_email = \"reclami@prova.it\"\n[comune.offices]\nTRIB = \" Ufficio Tributi \"\n",
            "test",
            no_env(),
        )
        .expect("valid");
        assert_eq!(
            ok.comune_links.privacy_url.as_deref(),
            Some("https://www.prova.it/privacy")
        );
        assert_eq!(ok.comune_links.accessibility_url, None);
        assert_eq!(
            ok.notify.office_names.get("TRIB").map(String::as_str),
            Some("Ufficio Tributi")
        );
        let ps = problems(
            "[comune]\nprivacy_url = \"javascript:alert(1)\"\n\
             accessibility_url = \"https://x.it/a\\\"onmouseover\"\n\
             complaint_url = \"https://x.it/a b\"\ncomplaint_email = \"not an address\"\n\
             [comune.offices]\nTRIB = \"  \"\n",
        );
        let keys: Vec<&str> = ps.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "comune.privacy_url",
                "comune.accessibility_url",
                "comune.complaint_url",
                "comune.complaint_email",
                "comune.offices.TRIB",
            ]
        );
        let ps = problems("[notify]\nlast_warning_working_days = 21\n");
        assert_eq!(ps[0].key, "notify.last_warning_working_days");
    }

    #[test]
    fn report_bounds_are_checked_by_key() {
        let keys =
            |text: &str| -> Vec<String> { problems(text).into_iter().map(|p| p.key).collect() };
        assert_eq!(
            keys("[reports]\non_time_threshold_pct = 150\nmax_tickets = 0\n"),
            ["reports.on_time_threshold_pct", "reports.max_tickets"]
        );
        assert_eq!(
            keys("[reports]\nmax_replays = \"lots\"\n"),
            ["reports.max_replays"]
        );
        let c = Config::from_toml(BUILTIN_TOML, "built-in", no_env()).expect("config");
        assert_eq!(
            (
                c.reports.on_time_threshold_pct,
                c.reports.max_tickets,
                c.reports.max_replays
            ),
            (90, 250_000, 5_000_000)
        );
    }

    #[test]
    fn the_shipped_file_is_valid_and_is_roma_capitale() {
        let c = Config::from_toml(BUILTIN_TOML, "built-in", no_env()).unwrap();
        assert_eq!(c.calendar, {
            let mut spec = CalendarSpec::roma_capitale();
            spec.patron = c.calendar.patron.clone();
            spec
        });
        assert_eq!(
            c.calendar.patron.as_ref().map(|p| (p.month, p.day)),
            Some((6, 29))
        );
        assert_eq!(c.policy, Policy::agreement_default());
        assert_eq!(c.database_url, "sqlite://data/messo.db");
    }

    #[test]
    fn an_empty_file_means_the_contract_defaults_without_patron_day() {
        let c = Config::from_toml("", "empty", no_env()).unwrap();
        assert_eq!(c.calendar.patron, None);
        assert_eq!(c.policy, Policy::agreement_default());
    }

    #[test]
    fn problems_name_their_key() {
        let text = r#"
[[sla.targets]]
category = "any"
priority = "urgente"
clock = "business"
working_days = 1
[[sla.targets]]
category = "any"
priority = "alta"
clock = "business"
working_days = 3
[[sla.targets]]
category = "any"
priority = "Urgent"
clock = "business"
working_days = 1
"#;
        let ps = problems(text);
        assert_eq!(
            ps[0].to_string(),
            "sla.targets[2].priority: unknown priority \"Urgent\"; expected urgente|alta|normale|bassa|any"
        );
        let ps = problems("[calendar.windows]\nmonday = [\"9-17\"]\n");
        assert_eq!(ps[0].key, "calendar.windows.monday[0]");
        let ps = problems("[calendar]\ntime_zone = \"Europe/Roma\"\n");
        assert_eq!(ps[0].key, "calendar.time_zone");
        let ps = problems("[sla]\nwarning_ratio = 1.5\nhours_per_working_day = 0\n");
        assert_eq!(ps.len(), 2);
        let ps = problems("[calendar]\nclosures = [{ date = \"2026-02-30\", name = \"x\" }]\n");
        assert_eq!(ps[0].key, "calendar.closures[0].date");
        let ps = problems("[sla]\nwarnig_ratio = 0.5\n");
        assert_eq!(ps[0].key, "sla.warnig_ratio");
        assert!(ps[0].message.contains("unknown field"), "{}", ps[0].message);
        let ps = problems("[smtp]\nhost = \"x\"\ncolour = 1\n");
        assert_eq!(ps[0].key, "smtp.colour");
        let ps = problems("[channels]\nemail = \"smtp\"\n");
        assert_eq!(ps[0].key, "smtp.host");
        let ps = problems("[channels]\nsms = \"http\"\n");
        assert_eq!(ps[0].key, "sms.providers");
        let ps = problems(
            "[smtp]\nhost = \"h\"\nsecurity = \"ssl\"\nusername = \"u\"\n\
             [sms]\nsender = \"Comune di Roma\"\n[[sms.providers]]\nname = \"a\"\nkind = \"rest-it\"\n\
             base_url = \"ftp://x\"\n[[sms.providers]]\nname = \"b\"\nkind = \"generic\"\n\
             base_url = \"http://x\"\nbody = '{\"to\": {{to}}}'\n[delivery]\nfallback = [\"sms\", \"fax\"]\n",
        );
        let keys: Vec<&str> = ps.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "smtp.security",
                "smtp.password",
                "sms.sender",
                "sms.providers[0].access_token",
                "sms.providers[0].base_url",
                "sms.providers[1].body",
                "delivery.fallback[1]"
            ],
            "{ps:?}"
        );
        let ps = problems("[http]\nlisten = 8080\n");
        assert_eq!(ps[0].key, "http.listen");
        let ps = problems("[database]\nurl = \"mysql://u:secret@h/db\"\n");
        assert_eq!(ps[0].key, "database.url");
        assert!(!ps[0].message.contains("secret"));
    }

    #[test]
    fn portal_problems_name_their_key_and_keys_are_never_printed() {
        let keys =
            |text: &str| -> Vec<String> { problems(text).iter().map(|p| p.key.clone()).collect() };
        assert_eq!(
            keys("[portal]\nlink_key = \"short\"\n"),
            ["portal.link_key"]
        );
        let ps = problems("[portal]\nlink_key = \"short\"\n");
        assert!(
            ps[0].message.contains("MESSO_PORTAL__LINK_KEY_FILE"),
            "{}",
            ps[0].message
        );
        assert!(!ps[0].message.contains("short"), "the key is not echoed");
        assert_eq!(
            keys("[portal]\nprevious_link_key = \"0123456789abcdef0123456789abcdef\"\n"),
            ["portal.previous_link_key"]
        );
        assert_eq!(
            keys("[portal]\nlink_valid_days = 0\n"),
            ["portal.link_valid_days"]
        );
        assert_eq!(
            keys("[portal]\nrequests_per_minute = -1\n"),
            ["portal.requests_per_minute"]
        );
        assert_eq!(
            keys("[portal]\ntrusted_proxies = [\"127.0.0.1\", \"localhost\"]\n"),
            ["portal.trusted_proxies[1]"]
        );
        assert_eq!(
            keys("[portal]\nbase_url = \"urp.example.it\"\n"),
            ["portal.base_url"]
        );
        assert_eq!(keys("[portal]\nlink_ttl = 3\n"), ["portal.link_ttl"]);
        assert_eq!(
            keys(
                "[[http.tokens]]\nname = \"p\"\nid = \"p1\"\nhash = \"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g\"\nscopes = [\"portale\"]\n"
            ),
            ["http.tokens[0].scopes[0]"]
        );
        // From the environment, and the defaults.
        let key = "k".repeat(40);
        let c = Config::from_toml(
            "[http]\npublic_base_url = \"https://urp.comune.example.it\"\n",
            "test",
            vec![("MESSO_PORTAL__LINK_KEY".to_owned(), key.clone())],
        )
        .unwrap();
        assert_eq!(c.portal.link_key.as_deref(), Some(key.as_str()));
        assert_eq!(c.portal.base_url, "https://urp.comune.example.it");
        assert_eq!(c.portal.link_valid_days, 180);
        assert!(c.portal.enabled && c.portal.show_office);
        assert!(
            !format!("{:?}", c.portal).contains(&key),
            "Debug redacts the key"
        );
    }

    #[test]
    fn the_domicile_look_up_is_off_by_default_and_its_keys_are_named_when_wrong() {
        let keys =
            |text: &str| -> Vec<String> { problems(text).iter().map(|p| p.key.clone()).collect() };
        let c = Config::from_toml("", "test", Vec::new()).unwrap();
        assert!(c.domicile.office_record && c.domicile.inad.is_none());
        assert!(c.notify.routing.office_record_is_domicile);
        let c = Config::from_toml("[domicile]\noffice_record = false\n", "test", no_env()).unwrap();
        assert!(!c.notify.routing.office_record_is_domicile);
        let mut want = [
            "domicile.inad.base_url",
            "domicile.inad.client_id",
            "domicile.inad.kid",
            "domicile.inad.practical_reference",
            "domicile.inad.private_key",
            "domicile.inad.purpose_id",
        ];
        want.sort_unstable();
        let mut got = keys("[domicile.inad]\n");
        got.sort();
        assert_eq!(got, want);
        let full = "[domicile.inad]\nbase_url = \"https://inad.example.it/v1\"\n\
                    practical_reference = \"URP\"\nclient_id = \"c\"\nkid = \"k\"\n\
                    purpose_id = \"p\"\nprivate_key = \"-----BEGIN PRIVATE KEY-----\"\n";
        let c = Config::from_toml(full, "test", no_env()).unwrap();
        let inad = c.domicile.inad.expect("inad");
        assert_eq!(
            (inad.cache_days, inad.timeout_s, inad.per_pass),
            (30, 5, 50)
        );
        assert_eq!(
            inad.pdnd.audience,
            "auth.interop.pagopa.it/client-assertion"
        );
        assert!(
            !format!("{inad:?}").contains("BEGIN"),
            "Debug hides the key"
        );
        assert_eq!(
            keys(&format!(
                "{full}cache_days = 0\ntimeout_s = 600\nper_pass = 0\n"
            )),
            [
                "domicile.inad.cache_days",
                "domicile.inad.timeout_s",
                "domicile.inad.per_pass"
            ]
        );
        assert_eq!(
            keys(&full.replace("https://inad.example.it/v1", "inad.example.it")),
            ["domicile.inad.base_url"]
        );
        assert_eq!(
            keys(&full.replace("-----BEGIN PRIVATE KEY-----", "secret")),
            ["domicile.inad.private_key"]
        );
        assert_eq!(keys(&format!("{full}nbf = 1\n")), ["domicile.inad.nbf"]);
    }

    #[test]
    fn the_phone_answering_is_off_by_default_and_its_keys_are_named_when_wrong() {
        let keys =
            |text: &str| -> Vec<String> { problems(text).iter().map(|p| p.key.clone()).collect() };
        let c = Config::from_toml("", "test", Vec::new()).unwrap();
        assert!(!c.voice.enabled);
        assert_eq!(c.voice.office_number, None);
        assert_eq!(
            (
                c.voice.max_tries,
                c.voice.access_code.max_failures,
                c.voice.access_code.lockout_hours
            ),
            (3, 5, 24)
        );
        assert!(c.voice.sms_answers.enabled);
        assert_eq!(keys("[voice]\nmax_tries = 0\n"), ["voice.max_tries"]);
        assert_eq!(
            keys("[voice]\noffice_number = \"URP\"\n"),
            ["voice.office_number"]
        );
        assert_eq!(
            keys("[voice.access_code]\nmax_failures = 0\nlockout_hours = 0\n"),
            [
                "voice.access_code.max_failures",
                "voice.access_code.lockout_hours"
            ]
        );
        assert_eq!(
            keys("[voice.sms_answers]\nper_sender_per_day = 1000\n"),
            ["voice.sms_answers.per_sender_per_day"]
        );
        assert_eq!(keys("[voice]\nenable = true\n"), ["voice.enable"]);
        let c = Config::from_toml(
            "[voice]\nenabled = true\noffice_number = \"06 1234 5678\"\n",
            "test",
            vec![("MESSO_VOICE__MAX_TRIES".to_owned(), "2".to_owned())],
        )
        .unwrap();
        assert_eq!(
            c.voice.office_number.map(|n| n.to_string()).as_deref(),
            Some("+390612345678")
        );
        assert_eq!(c.voice.max_tries, 2);
    }

    #[test]
    fn the_survey_is_off_by_default_and_its_keys_are_named_when_wrong() {
        let keys =
            |text: &str| -> Vec<String> { problems(text).iter().map(|p| p.key.clone()).collect() };
        assert_eq!(keys("[survey]\nanswer_days = 0\n"), ["survey.answer_days"]);
        assert_eq!(
            keys("[survey]\nanswer_days = 366\n"),
            ["survey.answer_days"]
        );
        assert_eq!(keys("[survey]\nenabled = \"si\"\n"), ["survey.enabled"]);
        assert_eq!(keys("[survey]\nquestion = 1\n"), ["survey.question"]);
        let c = Config::from_toml("", "test", Vec::new()).unwrap();
        assert_eq!(
            c.survey,
            Survey {
                enabled: false,
                answer_days: 30
            }
        );
        assert_eq!(c.survey.window_s(), None);
        let c = Config::from_toml(
            "[survey]\nenabled = true\n",
            "test",
            vec![("MESSO_SURVEY__ANSWER_DAYS".to_owned(), "7".to_owned())],
        )
        .unwrap();
        assert!(c.survey.enabled);
        assert_eq!(c.survey.window_s(), Some(7 * 86_400));
    }

    #[test]
    fn uncovered_combinations_are_refused() {
        let text = "[[sla.targets]]\ncategory = \"any\"\npriority = \"urgente\"\nclock = \"business\"\nworking_days = 1\n";
        let ps = problems(text);
        assert_eq!(ps[0].key, "sla.targets");
        assert!(ps[0].message.contains("no target for category"));
    }

    #[test]
    fn inbound_problems_name_their_key() {
        let text = format!(
            "{BUILTIN_TOML}\n[inbound]\nticket_format = \"URP {{seq}}\"\nreply_address = \"urp+x@comune.it\"\n\
             [[inbound.endpoints]]\nname = \"a b\"\nfamily = \"rest-it\"\ntoken = \"short\"\n\
             [[inbound.endpoints]]\nname = \"g\"\nfamily = \"carrier-pigeon\"\n\
             [[inbound.endpoints]]\nname = \"t\"\nfamily = \"generic\"\nrate_per_s = 0\n\
             [inbound.imap]\nhost = \"imap.example.it\"\nsecurity = \"ssl\"\n"
        );
        let keys: Vec<String> = problems(&text).into_iter().map(|p| p.key).collect();
        for k in [
            "inbound.ticket_format",
            "inbound.reply_address",
            "inbound.endpoints[0].name",
            "inbound.endpoints[0].token",
            "inbound.endpoints[1].family",
            "inbound.endpoints[2].secret",
            "inbound.endpoints[2].rate_per_s",
            "inbound.imap.security",
            "inbound.imap.username",
            "inbound.imap.password",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
        }
    }

    #[test]
    fn dkim_keys_are_checked_by_key_path_and_the_key_is_never_shown() {
        let base = "[channels]\nemail = \"smtp\"\n[smtp]\nhost = \"mail.example.it\"\n";
        let pem =
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
        let good = format!(
            "{base}[smtp.dkim]\ndomain = \"Comune.Example.IT\"\nselector = \"messo2026\"\n\
             algorithm = \"ed25519-sha256\"\nprivate_key = '''\n{pem}'''\n"
        );
        let c = Config::from_toml(&good, "test", no_env()).unwrap();
        let d = c.smtp.as_ref().and_then(|s| s.dkim.clone()).unwrap();
        assert_eq!(d.domain, "comune.example.it");
        assert_eq!(d.selector, "messo2026");
        assert_eq!(d.algorithm, DkimAlgorithm::Ed25519Sha256);
        assert!(!format!("{d:?}").contains("MC4CAQ"), "Debug hides the key");
        // Without the section there is no signing.
        let plain = Config::from_toml(base, "test", no_env()).unwrap();
        assert!(plain.smtp.unwrap().dkim.is_none());

        let ps = problems(&format!(
            "{base}[smtp.dkim]\ndomain = \"localhost\"\nselector = \"-bad\"\n\
             algorithm = \"rsa-sha1\"\nprivate_key = \"s3cr3t-not-pem\"\n"
        ));
        let keys: Vec<&str> = ps.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "smtp.dkim.domain",
                "smtp.dkim.selector",
                "smtp.dkim.algorithm",
                "smtp.dkim.private_key"
            ],
            "{ps:?}"
        );
        assert!(ps.iter().all(|p| !p.message.contains("s3cr3t")), "{ps:?}");

        let ps = problems(&format!(
            "{base}[smtp.dkim]\ndomain = \"example.it\"\nselector = \"s1\"\n"
        ));
        assert_eq!(ps.len(), 1, "{ps:?}");
        assert_eq!(ps[0].key, "smtp.dkim.private_key");
        assert!(ps[0].message.contains("MESSO_SMTP__DKIM__PRIVATE_KEY_FILE"));

        let ps = problems(&format!(
            "{base}[pec]\nhost = \"pec.example.it\"\nsender = \"urp@pec.example.it\"\n\
             [pec.dkim]\ndomain = \"example.it\"\n"
        ));
        assert_eq!(ps.len(), 1, "{ps:?}");
        assert_eq!(ps[0].key, "pec.dkim.domain");

        // From a file through the environment, as systemd's LoadCredential hands it over.
        let dir = std::env::temp_dir().join(format!("messo-dkim-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("dkim.pem");
        std::fs::write(&file, pem).unwrap();
        let env = vec![(
            "MESSO_SMTP__DKIM__PRIVATE_KEY_FILE".to_owned(),
            file.display().to_string(),
        )];
        let text = format!("{base}[smtp.dkim]\ndomain = \"example.it\"\nselector = \"s1\"\n");
        let c = Config::from_toml(&text, "test", env).unwrap();
        let d = c.smtp.and_then(|s| s.dkim).unwrap();
        assert_eq!(d.private_key, pem.trim_end_matches('\n'));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn mail_authentication_keys() {
        let c = Config::from_toml(BUILTIN_TOML, "test", no_env()).unwrap();
        assert_eq!(
            c.inbound.mail_auth,
            messo_core::inbound::auth::MailAuthMode::Require
        );
        assert!(c.inbound.trusted_authserv_ids.is_empty());
        assert_eq!(
            c.inbound.mail_auth_warning(),
            None,
            "no mailbox, nothing to warn of"
        );
        let c = Config::from_toml(
            "[inbound]\ntrusted_authserv_ids = [\"MX.Comune.Example.IT\", \"mx.comune.example.it\"]\n\
             [inbound.imap]\nhost = \"h\"\nusername = \"u\"\npassword = \"p\"\n",
            "test",
            no_env(),
        )
        .unwrap();
        assert_eq!(c.inbound.trusted_authserv_ids, ["mx.comune.example.it"]);
        assert_eq!(c.inbound.mail_auth_warning(), None);
        let c = Config::from_toml(
            "[inbound.imap]\nhost = \"h\"\nusername = \"u\"\npassword = \"p\"\n",
            "test",
            no_env(),
        )
        .unwrap();
        assert!(
            c.inbound
                .mail_auth_warning()
                .is_some_and(|w| w.contains("trusted_authserv_ids"))
        );
        let c = Config::from_toml("[inbound]\nmail_auth = \"off\"\n", "test", no_env()).unwrap();
        assert!(
            c.inbound
                .mail_auth_warning()
                .is_some_and(|w| w.contains("forge"))
        );
        let keys: Vec<String> = problems(
            "[inbound]\nmail_auth = \"maybe\"\ntrusted_authserv_ids = [\"mx.ok.it\", \"mx bad; x\", \"\"]\n",
        )
        .into_iter()
        .map(|p| p.key)
        .collect();
        assert_eq!(
            keys,
            [
                "inbound.mail_auth",
                "inbound.trusted_authserv_ids[1]",
                "inbound.trusted_authserv_ids[2]"
            ]
        );
    }

    #[test]
    fn inbound_secrets_come_from_files_and_twilio_providers_get_an_endpoint() {
        let dir = std::env::temp_dir().join(format!("messo-config-inbound-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("token");
        std::fs::write(&secret, "a-long-enough-url-token\n").unwrap();
        let text = format!(
            "{BUILTIN_TOML}\n[sms]\n[[sms.providers]]\nname = \"tw\"\nkind = \"twilio\"\naccount_sid = \"AC1\"\nauth_token = \"twilio-auth-token-0123\"\n\
             [inbound]\n[[inbound.endpoints]]\nname = \"skebby\"\nfamily = \"rest-it\"\n"
        );
        let env = vec![(
            "MESSO_INBOUND__ENDPOINTS__0__TOKEN_FILE".to_owned(),
            secret.display().to_string(),
        )];
        let c = Config::from_toml(&text, "test.toml", env).unwrap();
        assert_eq!(
            c.inbound.endpoint("skebby").map(|e| &e.family),
            Some(&Family::RestIt {
                token: "a-long-enough-url-token".to_owned()
            })
        );
        assert_eq!(
            c.inbound.endpoint("tw").map(|e| &e.family),
            Some(&Family::Twilio {
                auth_token: "twilio-auth-token-0123".to_owned()
            })
        );
        assert_eq!(c.inbound.ticket_format.as_str(), "{year}/{seq:6}");
    }

    /// Secrets that look like numbers, booleans, floats or lists: what an operator may well
    /// generate or be handed by a provider.
    const LOOKALIKES: [&str; 8] = [
        "1234567890123456",
        "0001234567890123",
        "9223372036854775807",
        "-1234567890123456",
        "1.2345678901234e300",
        "1979-05-27T07:32:00Z",
        "[1, 2, 3, 4, 5, 6]",
        "{ a = 1234567890123 }",
    ];
    /// Passwords the provider chose: no minimum length is ours to ask.
    const SHORT_LOOKALIKES: [&str; 6] = ["123456", "true", "nan", "inf", "1e5", "[]"];

    fn with_endpoints() -> String {
        format!(
            "{BUILTIN_TOML}\n[inbound]\n[[inbound.endpoints]]\nname = \"skebby\"\nfamily = \"rest-it\"\n\
             [[inbound.endpoints]]\nname = \"pbx\"\nfamily = \"generic\"\n\
             [[inbound.endpoints]]\nname = \"tw\"\nfamily = \"twilio\"\n"
        )
    }

    #[test]
    fn the_shape_of_the_file_is_traced_from_its_types() {
        let s = Schema::of::<RawConfig>().expect("every Raw type can be traced");
        for (pattern, kind) in [
            ("", Kind::Table),
            ("inbound.endpoints", Kind::Seq),
            ("inbound.endpoints[]", Kind::Table),
            ("inbound.endpoints[].token", Kind::Str),
            ("inbound.endpoints[].previous_secret", Kind::Str),
            ("inbound.endpoints[].rate_per_s", Kind::Int),
            ("inbound.imap.password", Kind::Str),
            ("smtp.password", Kind::Str),
            ("sms.providers[].auth_token", Kind::Str),
            ("sms.providers[].headers", Kind::Map),
            ("sms.providers[].headers.*", Kind::Str),
            ("portal.link_key", Kind::Str),
            ("portal.enabled", Kind::Bool),
            ("portal.trusted_proxies[]", Kind::Str),
            ("database.url", Kind::Str),
            ("sla.warning_ratio", Kind::Float),
            ("sla.hours_per_working_day", Kind::Int),
            ("templates.sms_max_parts_by_kind.*", Kind::Int),
            ("calendar.windows.monday[]", Kind::Str),
        ] {
            assert_eq!(s.kind(pattern), Some(kind), "{pattern}");
        }
        assert_eq!(
            s.child("sms.providers[].headers", "authorization"),
            "sms.providers[].headers.*"
        );
    }

    #[test]
    fn secrets_from_the_environment_are_strings_whatever_they_look_like() {
        let dir = std::env::temp_dir().join(format!("messo-config-digits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (n, secret) in LOOKALIKES.iter().enumerate() {
            let file = dir.join(format!("secret-{n}"));
            std::fs::write(&file, format!("{secret}\n")).unwrap();
            let env = vec![
                // Keys the file does not have at all, in a section it does not have.
                ("MESSO_SMTP__HOST".to_owned(), "smtp.example.it".to_owned()),
                ("MESSO_SMTP__USERNAME".to_owned(), "urp".to_owned()),
                ("MESSO_SMTP__PASSWORD".to_owned(), (*secret).to_owned()),
                (
                    "MESSO_INBOUND__ENDPOINTS__0__TOKEN".to_owned(),
                    (*secret).to_owned(),
                ),
                (
                    "MESSO_INBOUND__ENDPOINTS__1__SECRET_FILE".to_owned(),
                    file.display().to_string(),
                ),
                (
                    "MESSO_INBOUND__ENDPOINTS__1__PREVIOUS_SECRET".to_owned(),
                    (*secret).to_owned(),
                ),
                (
                    "MESSO_INBOUND__ENDPOINTS__2__AUTH_TOKEN_FILE".to_owned(),
                    file.display().to_string(),
                ),
            ];
            let c = match Config::from_toml(&with_endpoints(), "test", env) {
                Ok(c) => c,
                Err(e) => panic!("{secret:?} refused: {e}"),
            };
            let smtp = c.smtp.as_ref().expect("smtp");
            assert_eq!(smtp.password.as_deref(), Some(*secret));
            assert_eq!(
                c.inbound.endpoint("skebby").map(|e| &e.family),
                Some(&Family::RestIt {
                    token: (*secret).to_owned()
                })
            );
            assert_eq!(
                c.inbound.endpoint("pbx").map(|e| &e.family),
                Some(&Family::Generic {
                    secrets: vec![(*secret).to_owned(), (*secret).to_owned()]
                })
            );
            assert_eq!(
                c.inbound.endpoint("tw").map(|e| &e.family),
                Some(&Family::Twilio {
                    auth_token: (*secret).to_owned()
                })
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn short_secrets_from_the_environment_are_strings_too() {
        for secret in SHORT_LOOKALIKES {
            let env = vec![
                ("MESSO_SMTP__HOST".to_owned(), "smtp.example.it".to_owned()),
                ("MESSO_SMTP__USERNAME".to_owned(), "urp".to_owned()),
                ("MESSO_SMTP__PASSWORD".to_owned(), secret.to_owned()),
            ];
            let c = Config::from_toml(BUILTIN_TOML, "test", env).unwrap();
            assert_eq!(c.smtp.and_then(|s| s.password).as_deref(), Some(secret));
        }
    }

    #[test]
    fn a_generic_providers_header_from_the_environment_is_a_string() {
        // A header of a generic SMS provider (a table whose keys the user chooses).
        let text = format!(
            "{BUILTIN_TOML}\n[sms]\n[[sms.providers]]\nname = \"g\"\nkind = \"generic\"\n\
             base_url = \"https://sms.example.it/send\"\nbody = '{{\"to\": \"{{{{to}}}}\"}}'\n"
        );
        let c = Config::from_toml(
            &text,
            "test",
            vec![(
                "MESSO_SMS__PROVIDERS__0__HEADERS__X_API_KEY".to_owned(),
                "12345678901234567".to_owned(),
            )],
        )
        .unwrap();
        match &c.sms.providers[0].kind {
            ProviderKind::Generic { headers, .. } => {
                assert_eq!(
                    headers.get("x_api_key").map(String::as_str),
                    Some("12345678901234567")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    /// Every message of `err`, as the CLI would print it, and its debug form.
    fn shown(err: &ConfigError) -> String {
        format!("{err} {err:?}")
    }

    #[test]
    fn no_error_shows_a_secret() {
        let secret = "4815162342000777";
        // In the file, unquoted: the key and the type are named, the digits are not.
        let text = format!(
            "{}[[inbound.endpoints]]\nname = \"a\"\nfamily = \"rest-it\"\ntoken = {secret}\n",
            with_endpoints()
        );
        let err = Config::from_toml(&text, "test", no_env()).unwrap_err();
        assert!(!shown(&err).contains(secret), "{err}");
        assert!(
            err.to_string()
                .contains("inbound.endpoints[3].token: expected a string"),
            "{err}"
        );
        // A syntax error on the secret's line: where, not what.
        let q3 = "'''";
        for text in [
            format!("[smtp]\nhost = \"h\"\npassword = \"{secret}\n"),
            format!("[smtp]\nhost = \"h\"\npassword = {secret}x\n"),
            format!("[smtp]\nhost = \"h\"\npassword = {q3}{secret}\n"),
            format!("[smtp]\nhost = \"h\"\n{secret} password = 1\n"),
            format!("[smtp]\nhost = \"h\"\npassword = \"{secret}\"\npassword = \"{secret}\"\n"),
        ] {
            let err = Config::from_toml(&text, "test", no_env()).unwrap_err();
            assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
            assert!(!shown(&err).contains("481516"), "{err}");
            assert!(err.to_string().contains("line "), "{err}");
        }
        // A secret set by mistake on a number, a list, a boolean, a table.
        for var in [
            "MESSO_SLA__HOURS_PER_WORKING_DAY",
            "MESSO_SLA__WARNING_RATIO",
            "MESSO_PORTAL__ENABLED",
            "MESSO_PORTAL__TRUSTED_PROXIES",
            "MESSO_TEMPLATES__SMS_MAX_PARTS_BY_KIND",
        ] {
            let err = Config::from_toml(
                BUILTIN_TOML,
                "test",
                vec![(var.to_owned(), format!("s3cret-{secret}"))],
            )
            .unwrap_err();
            assert!(!shown(&err).contains(secret), "{var}: {err}");
            assert!(err.to_string().contains(var), "{var}: {err}");
        }
        // Short secrets are refused without being shown.
        for (text, key) in [
            (
                "[inbound]\n[[inbound.endpoints]]\nname = \"g\"\nfamily = \"generic\"\n\
                 secret = \"a-long-enough-signing-secret\"\nprevious_secret = \"4815162\"\n",
                "inbound.endpoints[0].previous_secret",
            ),
            (
                "[inbound]\n[[inbound.endpoints]]\nname = \"t\"\nfamily = \"twilio\"\nauth_token = \"4815162\"\n",
                "inbound.endpoints[0].auth_token",
            ),
            (
                "[sms]\n[[sms.providers]]\nname = \"t\"\nkind = \"twilio\"\naccount_sid = \"AC1\"\nauth_token = \"4815162\"\n",
                "sms.providers[0].auth_token",
            ),
            (
                "[inbound]\n[[inbound.endpoints]]\nname = \"m\"\nfamily = \"mail\"\ntoken = \"4815162\"\n",
                "inbound.endpoints[0].token",
            ),
        ] {
            let ps = problems(text);
            let Some(p) = ps.iter().find(|p| p.key == key) else {
                panic!("{key}: {ps:?}");
            };
            assert!(
                p.message
                    .contains(&format!("at least {MIN_SECRET_CHARS} characters")),
                "{p}"
            );
            assert!(!format!("{ps:?}").contains("4815162"), "{ps:?}");
        }
    }

    #[test]
    fn environment_overrides_and_secret_files() {
        let dir = std::env::temp_dir().join(format!("messo-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("db-url");
        std::fs::write(&secret, "postgres://messo:s3cret@127.0.0.1/test\n").unwrap();
        let env = vec![
            (
                "MESSO_DATABASE__URL_FILE".to_owned(),
                secret.display().to_string(),
            ),
            ("MESSO_SLA__WARNING_RATIO".to_owned(), "0.8".to_owned()),
            ("MESSO_HTTP__LISTEN".to_owned(), "0.0.0.0:9000".to_owned()),
            (
                "MESSO_SLA__TARGETS__0__WORKING_DAYS".to_owned(),
                "2".to_owned(),
            ),
            ("MESSO_LOG".to_owned(), "debug".to_owned()),
            ("OTHER__X".to_owned(), "ignored".to_owned()),
        ];
        let c = Config::from_toml(BUILTIN_TOML, "built-in", env).unwrap();
        assert_eq!(c.database_url, "postgres://messo:s3cret@127.0.0.1/test");
        assert_eq!(c.policy.warning_ratio_bp(), 8000);
        assert_eq!(c.http.listen.port(), 9000);
        assert_eq!(
            c.policy
                .target(Category::Generale, Priority::Urgente)
                .seconds,
            2 * 8 * 3600
        );
        assert!(c.overrides.contains(&(
            "database.url".to_owned(),
            "MESSO_DATABASE__URL_FILE".to_owned()
        )));

        let bad = vec![(
            "MESSO_SLA__HOURS_PER_WORKING_DAY".to_owned(),
            "eight".to_owned(),
        )];
        let err = Config::from_toml(BUILTIN_TOML, "built-in", bad).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("environment variable MESSO_SLA__HOURS_PER_WORKING_DAY")
        );
        let unknown = vec![("MESSO_SLA__COLOUR".to_owned(), "blue".to_owned())];
        let err = Config::from_toml(BUILTIN_TOML, "built-in", unknown).unwrap_err();
        assert!(
            err.to_string().contains("(set by MESSO_SLA__COLOUR)"),
            "{err}"
        );
        let missing = vec![(
            "MESSO_DATABASE__URL_FILE".to_owned(),
            "/nonexistent/x".to_owned(),
        )];
        let err = Config::from_toml(BUILTIN_TOML, "built-in", missing).unwrap_err();
        assert!(
            err.to_string().contains("cannot read /nonexistent/x"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
