//! `messo doctor`: checks a configuration against the world before go-live (the store, the SMTP
//! and PEC accounts, the SMS providers, the public URL, the sender domain's SPF/DKIM/DMARC
//! records, the clock, file permissions) and says what to fix.
//!
//! Each check gives [`Finding`]s; [`run`] runs them (the network ones concurrently, each under
//! [`Options::timeout`]) and gathers them in a [`Report`], rendered as aligned text or JSON.
//! Nothing here prints a secret: passwords, tokens and keys never reach a finding, and a
//! database URL is shown without its user information.

pub mod clock;
pub mod dns;
pub mod domicile;
pub mod files;
pub mod sms;
pub mod smtp;
pub mod store;
pub mod voice;
pub mod web;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::config::{Config, Dkim};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    /// Not applicable to this configuration, or impossible to check (the reason is the detail).
    Skip,
}

impl Status {
    /// `OK`, `WARN`, `FAIL`, `SKIP`.
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }
}

/// One result: which check (`store.migrated`, `smtp.tls`, `dns.spf`…), how it came out, what
/// was found, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(check: &'static str, detail: impl Into<String>) -> Finding {
        Finding {
            check,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn skip(check: &'static str, detail: impl Into<String>) -> Finding {
        Finding {
            check,
            status: Status::Skip,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn warn(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            check,
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            check,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Computes the DKIM TXT record value (`v=DKIM1; k=…; p=…`) of the configured key.
pub type DkimRecordFn = fn(&Dkim) -> Result<String, String>;

/// What the doctor is asked to do besides its checks, and where it looks.
#[derive(Debug, Clone)]
pub struct Options {
    /// Send one test e-mail through `[smtp]` to this address (without it, no mail is sent).
    pub send_test_to: Option<String>,
    /// Ask this DNS server instead of the system's resolvers (the tests' own server).
    pub nameserver: Option<SocketAddr>,
    /// The public key record of the configured DKIM key, to compare with the published one;
    /// without it, the published record is only checked to be a DKIM key.
    pub dkim_record: Option<DkimRecordFn>,
    /// The longest any one network step may take.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            send_test_to: None,
            nameserver: None,
            dkim_record: None,
            timeout: Duration::from_secs(5),
        }
    }
}

/// The output formats of `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

impl Format {
    /// `text` or `json`; anything else is a usage error (exit status 2).
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "text" => Some(Format::Text),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// Exit status for a usage error (an unknown `--format`).
pub const EXIT_USAGE: u8 = 2;

/// Every finding, in the order the checks are listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub findings: Vec<Finding>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    findings: &'a [Finding],
    ok: usize,
    warn: usize,
    fail: usize,
    skip: usize,
}

impl Report {
    pub fn count(&self, status: Status) -> usize {
        self.findings.iter().filter(|f| f.status == status).count()
    }

    /// The findings of one check.
    pub fn of<'a>(&'a self, check: &'a str) -> impl Iterator<Item = &'a Finding> + 'a {
        self.findings.iter().filter(move |f| f.check == check)
    }

    /// 0 when nothing failed; 1 on any failure, or on any warning when `strict`.
    pub fn exit_code(&self, strict: bool) -> u8 {
        let failed = self.count(Status::Fail) > 0 || (strict && self.count(Status::Warn) > 0);
        u8::from(failed)
    }

    /// One line per finding, columns aligned, each fix on an indented line below:
    ///
    /// ```text
    /// OK    store.migrated  18 migrations applied, none pending
    /// WARN  dns.dkim        no DKIM key is configured
    ///       fix: …
    /// ```
    pub fn render_text(&self) -> String {
        let width = self
            .findings
            .iter()
            .map(|f| f.check.len())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for f in &self.findings {
            let _ = writeln!(
                out,
                "{:<6}{:<width$}  {}",
                f.status.label(),
                f.check,
                f.detail
            );
            if let Some(fix) = &f.fix {
                let _ = writeln!(out, "{:<6}fix: {fix}", "");
            }
        }
        let _ = writeln!(
            out,
            "\n{} ok, {} warnings, {} failed, {} skipped",
            self.count(Status::Ok),
            self.count(Status::Warn),
            self.count(Status::Fail),
            self.count(Status::Skip)
        );
        out
    }

    /// `{"findings": [{"check", "status", "detail", "fix"}…], "ok", "warn", "fail", "skip"}`.
    pub fn render_json(&self) -> String {
        let r = JsonReport {
            findings: &self.findings,
            ok: self.count(Status::Ok),
            warn: self.count(Status::Warn),
            fail: self.count(Status::Fail),
            skip: self.count(Status::Skip),
        };
        serde_json::to_string_pretty(&r).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self.render_text(),
            Format::Json => {
                let mut s = self.render_json();
                s.push('\n');
                s
            }
        }
    }
}

/// The report of a configuration that could not be loaded: one failure naming its keys.
pub fn invalid_config(error: &dyn std::fmt::Display) -> Report {
    Report {
        findings: vec![Finding::fail(
            "config.valid",
            error.to_string(),
            "correct the keys named above (`messo check-config` lists every problem)",
        )],
    }
}

/// Runs every check on `config`.
pub async fn run(config: &Config, options: &Options) -> Report {
    crate::install_crypto();
    let mut findings = vec![Finding::ok(
        "config.valid",
        format!("{} loaded and valid", config.source_name),
    )];
    findings.extend(files::check(config));
    findings.push(clock::check());
    let (store, smtp, pec, sms, voice, domicile, web, dns) = tokio::join!(
        store::check(&config.database_url, options.timeout),
        smtp::check_smtp(config, options),
        smtp::check_pec(config, options),
        sms::check(config, options.timeout),
        voice::check(config, options.timeout),
        domicile::check(config, options.timeout),
        web::check(&config.http.public_base_url, options.timeout),
        dns::check(config, options),
    );
    for part in [store, smtp, pec, sms, voice, domicile, web, dns] {
        findings.extend(part);
    }
    Report { findings }
}

/// `url` without its user information (`postgres://messo:secret@db/messo` →
/// `postgres://db/messo`), for findings.
pub fn without_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let path = path.split('?').next().unwrap_or(path);
            format!("{scheme}://{host}{path}")
        }
        None => url.split('?').next().unwrap_or(url).to_owned(),
    }
}

/// A network error's message without any URL in it (it may carry a key or a password).
/// The most of an answer's body a network check reads (a provider's account status, `/healthz`):
/// a server that sends more is cut there, so no answer can grow the doctor's memory.
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

/// The start of `resp`'s body, at most [`BODY_LIMIT`] bytes, as text (lossy); empty when the
/// body cannot be read.
pub(crate) async fn body_text(mut resp: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = BODY_LIMIT - buf.len();
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= BODY_LIMIT {
            break;
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The body as JSON (`Null` when it is not JSON or is longer than [`BODY_LIMIT`]).
pub(crate) async fn body_json(resp: reqwest::Response) -> serde_json::Value {
    serde_json::from_str(&body_text(resp).await).unwrap_or(serde_json::Value::Null)
}

/// The HTTP client of the network checks: `timeout` for connecting and for the whole request,
/// no redirect followed (a redirect is itself a finding), named in the server's logs. When
/// none can be built, the finding `check` says so.
pub(crate) fn http_client(
    check: &'static str,
    timeout: Duration,
) -> Result<reqwest::Client, Finding> {
    crate::install_crypto();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("messo-doctor/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            Finding::fail(
                check,
                format!("no HTTP client: {}", reqwest_error(e)),
                "report this as a bug",
            )
        })
}

pub(crate) fn reqwest_error(e: reqwest::Error) -> String {
    let timeout = e.is_timeout();
    let connect = e.is_connect();
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    if timeout {
        format!("no answer in time ({text})")
    } else if connect {
        format!("cannot connect: {text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            findings: vec![
                Finding::ok("store.migrated", "18 migrations applied"),
                Finding::warn(
                    "dns.dkim",
                    "no DKIM key is configured",
                    "configure [smtp.dkim]",
                ),
                Finding::skip("sms.auth", "no provider"),
            ],
        }
    }

    #[test]
    fn text_is_aligned_with_fixes_indented() {
        let text = report().render_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "OK    store.migrated  18 migrations applied");
        assert_eq!(lines[1], "WARN  dns.dkim        no DKIM key is configured");
        assert_eq!(lines[2], "      fix: configure [smtp.dkim]");
        assert_eq!(lines[3], "SKIP  sms.auth        no provider");
        assert!(
            text.ends_with("1 ok, 1 warnings, 0 failed, 1 skipped\n"),
            "{text}"
        );
    }

    #[test]
    fn json_has_every_finding_and_the_counts() {
        let v: serde_json::Value = serde_json::from_str(&report().render_json()).expect("JSON");
        assert_eq!(v["findings"][1]["check"], "dns.dkim");
        assert_eq!(v["findings"][1]["status"], "warn");
        assert_eq!(v["findings"][1]["fix"], "configure [smtp.dkim]");
        assert_eq!(v["findings"][0]["fix"], serde_json::Value::Null);
        assert_eq!((v["ok"].as_u64(), v["warn"].as_u64()), (Some(1), Some(1)));
        assert_eq!(v["fail"].as_u64(), Some(0));
    }

    #[test]
    fn exit_codes_follow_failures_and_strictness() {
        let mut r = report();
        assert_eq!(r.exit_code(false), 0);
        assert_eq!(r.exit_code(true), 1);
        r.findings.retain(|f| f.status != Status::Warn);
        assert_eq!(r.exit_code(true), 0);
        r.findings
            .push(Finding::fail("web.healthz", "503", "start it"));
        assert_eq!(r.exit_code(false), 1);
        assert_eq!(Format::parse("yaml"), None);
        assert_eq!(Format::parse("json"), Some(Format::Json));
        assert_eq!(
            invalid_config(&"smtp.port: out of range").exit_code(false),
            1
        );
    }

    #[test]
    fn credentials_are_taken_out_of_urls() {
        assert_eq!(
            without_credentials("postgres://messo:s3cret@db.example:5432/messo?sslmode=require"),
            "postgres://db.example:5432/messo"
        );
        assert_eq!(
            without_credentials("sqlite:///var/lib/messo/messo.db"),
            "sqlite:///var/lib/messo/messo.db"
        );
        assert_eq!(
            without_credentials("sqlite:data/messo.db"),
            "sqlite:data/messo.db"
        );
    }
}
