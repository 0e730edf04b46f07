//! Whether an e-mail reply comes from whom its `From` says. Anyone can write a citizen's
//! address in `From`; only the receiving side can tell, by SPF, DKIM and DMARC, whether the
//! sender's domain vouches for the message. Messo reads that verdict — the
//! `Authentication-Results` header (RFC 8601) written by a receiving relay it trusts, or the
//! verdict fields an inbound-mail provider posts — and decides, here, whether the reply may
//! resume a ticket's clock. Pure: no I/O; the store applies the decision.
//!
//! **The rule.** A reply is authenticated when, in the verdict of a trusted source:
//! 1. DMARC passed for the `From` domain (`dmarc=pass`, with `header.from` equal to it when
//!    given); or, when there is no DMARC verdict either way (none, or the domain publishes no
//!    policy),
//! 2. DKIM passed with a signing domain (`header.d`, else the domain of `header.i`) aligned with
//!    the `From` domain; or
//! 3. SPF passed for an envelope sender (`smtp.mailfrom`) whose domain is aligned with it.
//!
//! `dmarc=fail` is a failure whatever else passed. Aligned means equal, or one a subdomain of
//! the other with the shorter at least two labels long (DMARC's relaxed alignment, without the
//! public suffix list). Anything else — no trusted verdict at all included — is not
//! authenticated.
//!
//! **Trust.** Anybody can add an `Authentication-Results` header to a message before sending
//! it. Only headers whose authserv-id is in `inbound.trusted_authserv_ids` (the relays that
//! receive the URP's mail) are read, and of those only the topmost, the one the last trusted
//! hop added. A provider's verdict fields are trusted because the webhook itself is verified
//! (its token or signature); a verdict field given twice is ignored (a copy from the message
//! beside the provider's own).

use serde::{Deserialize, Serialize};

/// Whether an e-mail reply may resume a clock without its sender being authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MailAuthMode {
    /// Only an authenticated reply resumes a clock; another is a note for the office.
    #[default]
    Require,
    /// The `From` address alone decides (before issue 15); warned about at start.
    Off,
}

impl MailAuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MailAuthMode::Require => "require",
            MailAuthMode::Off => "off",
        }
    }

    pub fn parse(s: &str) -> Option<MailAuthMode> {
        match s {
            "require" => Some(MailAuthMode::Require),
            "off" => Some(MailAuthMode::Off),
            _ => None,
        }
    }
}

/// The outcome of the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    /// No trusted verdict at all.
    #[default]
    Unknown,
}

/// The decision about one reply, kept with its record.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MailAuth {
    pub verdict: Verdict,
    /// What decided it, in one line: `dmarc=pass (mx.comune.example.it)`.
    pub reason: String,
}

impl MailAuth {
    fn new(verdict: Verdict, reason: impl Into<String>) -> MailAuth {
        MailAuth {
            verdict,
            reason: reason.into(),
        }
    }

    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }
}

/// Why a reply may not resume a clock; its text goes into the note for the office.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotAuthenticated {
    /// The sender was judged and did not pass: what decided it.
    #[error("{0}")]
    Judged(String),
    /// The sender was never judged (a record stored before the check existed).
    #[error("the sender was not authenticated")]
    NotJudged,
}

/// Whether a reply whose sender is judged `auth` (none: not judged, a record stored before
/// the check existed) may resume a clock under `mode`; the reason when not.
pub fn may_resume(mode: MailAuthMode, auth: Option<&MailAuth>) -> Result<(), NotAuthenticated> {
    match (mode, auth) {
        (MailAuthMode::Off, _) => Ok(()),
        (MailAuthMode::Require, Some(a)) if a.passed() => Ok(()),
        (MailAuthMode::Require, Some(a)) => Err(NotAuthenticated::Judged(a.reason.clone())),
        (MailAuthMode::Require, None) => Err(NotAuthenticated::NotJudged),
    }
}

/// One method's result in an `Authentication-Results` header: `dkim=pass header.d=x.it`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodResult {
    /// Lowercase, without a version (`dkim`, `spf`, `dmarc`).
    pub method: String,
    /// Lowercase (`pass`, `fail`, `softfail`, `none`…).
    pub result: String,
    /// `ptype.property` → value, names lowercase (`header.d`, `smtp.mailfrom`).
    pub props: Vec<(String, String)>,
}

impl MethodResult {
    fn prop(&self, name: &str) -> Option<&str> {
        self.props
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A parsed `Authentication-Results` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthResults {
    /// Lowercase.
    pub authserv_id: String,
    pub results: Vec<MethodResult>,
}

/// The longest header value read; longer ones are not a verdict.
const MAX_HEADER: usize = 16 * 1024;

/// Removes RFC 5322 comments (nested, with quoted pairs) outside quoted strings, and unfolds.
fn without_comments(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    for c in value.chars() {
        let c = if matches!(c, '\r' | '\n' | '\t') {
            ' '
        } else {
            c
        };
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' if quoted || depth > 0 => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => {
                depth += 1;
                if depth == 1 {
                    out.push(' ');
                }
            }
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            _ => out.push(c),
        }
    }
    out
}

/// Splits at `sep` outside quoted strings.
fn split_outside_quotes(s: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let (mut quoted, mut escaped) = (false, false);
    for c in s.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' && quoted {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(String::new());
            continue;
        }
        if let Some(last) = parts.last_mut() {
            last.push(c);
        }
    }
    parts
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        s[1..s.len() - 1]
            .replace("\\\"", "\"")
            .replace("\\\\", "\\")
    } else {
        s.to_owned()
    }
}

/// `k = v   k2=v2` → [(k, v), (k2, v2)], with blanks around `=` allowed.
fn pairs(segment: &str) -> Vec<(String, String)> {
    let mut joined = String::new();
    for part in split_outside_quotes(segment, '=')
        .iter()
        .enumerate()
        .map(|(i, p)| if i == 0 { p.trim_end() } else { p.trim() })
    {
        if !joined.is_empty() {
            joined.push('=');
        }
        joined.push_str(part);
    }
    split_outside_quotes(&joined, ' ')
        .into_iter()
        .filter(|t| !t.is_empty())
        .filter_map(|t| {
            let (k, v) = t.split_once('=')?;
            Some((k.trim().to_ascii_lowercase(), unquote(v)))
        })
        .collect()
}

/// Parses one `Authentication-Results` value (after the colon). None when it has no
/// authserv-id or is too long to be a verdict.
pub fn parse_header(value: &str) -> Option<AuthResults> {
    if value.len() > MAX_HEADER {
        return None;
    }
    let clean = without_comments(value);
    let mut segments = split_outside_quotes(&clean, ';').into_iter();
    let head = segments.next()?;
    // authserv-id [ version ]
    let authserv_id = split_outside_quotes(head.trim(), ' ')
        .into_iter()
        .find(|t| !t.is_empty())
        .map(|t| unquote(&t).to_ascii_lowercase())?;
    if authserv_id.is_empty() || authserv_id.contains('=') {
        return None;
    }
    let mut results = Vec::new();
    for seg in segments {
        let seg = seg.trim();
        if seg.is_empty() || seg.eq_ignore_ascii_case("none") {
            continue;
        }
        let mut kv = pairs(seg).into_iter();
        let Some((method, result)) = kv.next() else {
            continue;
        };
        let method = method.split('/').next().unwrap_or_default().to_owned();
        let props = kv.filter(|(k, _)| k.contains('.')).collect();
        results.push(MethodResult {
            method,
            result: result.to_ascii_lowercase(),
            props,
        });
    }
    Some(AuthResults {
        authserv_id,
        results,
    })
}

/// The domain of an address or of a bare domain, lowercase, without a trailing dot.
fn domain_of(s: &str) -> String {
    let s = s.trim().trim_start_matches('<').trim_end_matches('>');
    let d = s.rsplit_once('@').map_or(s, |(_, d)| d);
    d.trim_end_matches('.').to_ascii_lowercase()
}

/// Relaxed alignment: equal, or one a subdomain of the other, the shorter of at least two
/// labels.
pub fn aligned(a: &str, b: &str) -> bool {
    let (a, b) = (domain_of(a), domain_of(b));
    if a.is_empty() || b.is_empty() {
        return false;
    }
    if a == b {
        return true;
    }
    let (short, long) = if a.len() < b.len() { (a, b) } else { (b, a) };
    short.contains('.') && long.ends_with(&format!(".{short}"))
}

/// The rule of the module's documentation, over the results of one trusted source, for a
/// reply whose `From` is `from`. `source` names the source in the reason.
pub fn decide(results: &[MethodResult], from: &str, source: &str) -> MailAuth {
    let from_domain = domain_of(from);
    if from_domain.is_empty() {
        return MailAuth::new(Verdict::Fail, "the message has no From domain");
    }
    if results.is_empty() {
        return MailAuth::new(
            Verdict::Fail,
            format!("{source} checked nothing (no SPF, DKIM or DMARC result)"),
        );
    }
    if let Some(d) = results.iter().find(|r| r.method == "dmarc") {
        let about_from = d
            .prop("header.from")
            .is_none_or(|h| domain_of(h) == from_domain);
        match d.result.as_str() {
            "pass" if about_from => {
                return MailAuth::new(Verdict::Pass, format!("dmarc=pass ({source})"));
            }
            "pass" => {
                return MailAuth::new(
                    Verdict::Fail,
                    format!("dmarc=pass for another From domain ({source})"),
                );
            }
            "fail" => return MailAuth::new(Verdict::Fail, format!("dmarc=fail ({source})")),
            _ => {}
        }
    }
    if let Some(r) = results.iter().find(|r| {
        r.method == "dkim"
            && r.result == "pass"
            && r.prop("header.d")
                .or_else(|| r.prop("header.i"))
                .is_some_and(|d| aligned(d, &from_domain))
    }) {
        let d = r.prop("header.d").or_else(|| r.prop("header.i"));
        return MailAuth::new(
            Verdict::Pass,
            format!(
                "dkim=pass aligned (d={}) ({source})",
                domain_of(d.unwrap_or_default())
            ),
        );
    }
    if results.iter().any(|r| {
        r.method == "spf"
            && r.result == "pass"
            && r.prop("smtp.mailfrom")
                .is_some_and(|m| aligned(m, &from_domain))
    }) {
        return MailAuth::new(Verdict::Pass, format!("spf=pass aligned ({source})"));
    }
    let seen: Vec<String> = results
        .iter()
        .filter(|r| matches!(r.method.as_str(), "spf" | "dkim" | "dmarc"))
        .map(|r| format!("{}={}", r.method, r.result))
        .collect();
    MailAuth::new(
        Verdict::Fail,
        format!(
            "no DMARC pass and no SPF or DKIM pass aligned with the From domain ({}; {source})",
            if seen.is_empty() {
                "no SPF, DKIM or DMARC result".to_owned()
            } else {
                seen.join(", ")
            }
        ),
    )
}

/// The verdict of the topmost `Authentication-Results` (values in header order, top first)
/// whose authserv-id is trusted; None when there is none.
pub fn from_trusted_headers<'a>(
    values: impl IntoIterator<Item = &'a str>,
    from: &str,
    trusted: &[String],
) -> Option<MailAuth> {
    values
        .into_iter()
        .filter_map(parse_header)
        .find(|h| {
            trusted
                .iter()
                .any(|t| t.eq_ignore_ascii_case(&h.authserv_id))
        })
        .map(|h| decide(&h.results, from, &h.authserv_id))
}

/// For mail read from the mailbox: the topmost trusted `Authentication-Results`.
pub fn for_mailbox(auth_results: &[String], from: &str, trusted: &[String]) -> MailAuth {
    if trusted.is_empty() {
        return MailAuth::new(
            Verdict::Unknown,
            "no trusted relay is configured (inbound.trusted_authserv_ids)",
        );
    }
    from_trusted_headers(auth_results.iter().map(String::as_str), from, trusted).unwrap_or_else(
        || {
            MailAuth::new(
                Verdict::Unknown,
                "no Authentication-Results from a trusted relay (inbound.trusted_authserv_ids)",
            )
        },
    )
}

/// The `Authentication-Results` values of a raw header block (SendGrid's `headers` field), in
/// order.
fn header_block_results(block: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for line in block.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(c) = current.as_mut() {
                c.push(' ');
                c.push_str(line.trim());
            }
            continue;
        }
        out.extend(current.take());
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("Authentication-Results")
        {
            current = Some(value.trim().to_owned());
        }
    }
    out.extend(current);
    out
}

/// For the mail webhook: the posted fields (`pairs`, as received) of a verified request, for a
/// reply whose `From` is `from`. Read, in this order: an `Authentication-Results` of a trusted
/// relay (a posted field, or a line of SendGrid's `headers`); SendGrid's `SPF`, `dkim` and
/// `envelope`; Mailgun's `X-Mailgun-Spf` with the envelope `sender`.
pub fn for_webhook(pairs: &[(String, String)], from: &str, trusted: &[String]) -> MailAuth {
    let mut posted = Posted {
        pairs,
        doubled: Vec::new(),
    };
    if !trusted.is_empty()
        && let Some(a) = posted_trusted_headers(&posted, from, trusted)
    {
        return a;
    }
    if let Some(a) = sendgrid(&mut posted, from) {
        return a;
    }
    if let Some(a) = mailgun(&mut posted, from) {
        return a;
    }
    if !posted.doubled.is_empty() {
        return MailAuth::new(
            Verdict::Fail,
            format!(
                "the provider's verdict field {} was given more than once",
                posted.doubled.join(", ")
            ),
        );
    }
    MailAuth::new(
        Verdict::Unknown,
        "the provider posted no verdict (SPF, dkim) and no Authentication-Results from a trusted relay",
    )
}

/// The fields a provider posted, read by name in any case.
struct Posted<'a> {
    pairs: &'a [(String, String)],
    /// The verdict fields asked for with [`Posted::one`] that were given more than once.
    doubled: Vec<&'static str>,
}

impl<'a> Posted<'a> {
    /// Every value of field `name`, in order.
    fn all(&self, name: &str) -> Vec<&'a str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of verdict field `name`, which must be there once: two are a copy from the
    /// message beside the provider's own, and neither is believed (the name is noted).
    fn one(&mut self, name: &'static str) -> Option<&'a str> {
        match self.all(name).as_slice() {
            [v] => Some(*v),
            [] => None,
            _ => {
                self.doubled.push(name);
                None
            }
        }
    }
}

/// The verdict of the topmost trusted `Authentication-Results` among the posted fields and the
/// lines of SendGrid's raw `headers`.
fn posted_trusted_headers(posted: &Posted<'_>, from: &str, trusted: &[String]) -> Option<MailAuth> {
    let mut values: Vec<String> = posted
        .all("Authentication-Results")
        .into_iter()
        .map(str::to_owned)
        .collect();
    for block in posted.all("headers") {
        values.extend(header_block_results(block));
    }
    from_trusted_headers(values.iter().map(String::as_str), from, trusted)
}

/// SendGrid Inbound Parse: its `SPF` verdict (for the envelope sender in `envelope`) and its
/// `dkim` verdicts; `None` when it posted neither.
fn sendgrid(posted: &mut Posted<'_>, from: &str) -> Option<MailAuth> {
    let spf = posted.one("SPF");
    let dkim = posted.one("dkim");
    let envelope_from = posted
        .one("envelope")
        .and_then(|e| serde_json::from_str::<serde_json::Value>(e).ok())
        .and_then(|v| v.get("from").and_then(|f| f.as_str()).map(str::to_owned));
    if spf.is_none() && dkim.is_none() {
        return None;
    }
    let mut results = Vec::new();
    if let Some(s) = spf {
        results.push(MethodResult {
            method: "spf".to_owned(),
            result: s.trim().to_ascii_lowercase(),
            props: envelope_from
                .iter()
                .map(|f| ("smtp.mailfrom".to_owned(), f.clone()))
                .collect(),
        });
    }
    results.extend(sendgrid_dkim(dkim.unwrap_or_default()));
    Some(decide(&results, from, "the provider's SPF and dkim fields"))
}

/// SendGrid's `dkim` field, `{@example.it : pass, @other.it : fail}`, as one result per domain.
fn sendgrid_dkim(field: &str) -> Vec<MethodResult> {
    field
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .split(',')
        .filter_map(|entry| {
            let (d, r) = entry.split_once(':')?;
            Some(MethodResult {
                method: "dkim".to_owned(),
                result: r.trim().to_ascii_lowercase(),
                props: vec![(
                    "header.d".to_owned(),
                    d.trim().trim_start_matches('@').to_owned(),
                )],
            })
        })
        .collect()
}

/// Mailgun: `X-Mailgun-Spf` for the envelope `sender`; `None` when it is not posted. Its DKIM
/// check does not name the signing domain, so only SPF can be aligned.
fn mailgun(posted: &mut Posted<'_>, from: &str) -> Option<MailAuth> {
    let spf = posted.one("X-Mailgun-Spf")?;
    let results = vec![MethodResult {
        method: "spf".to_owned(),
        result: spf.trim().to_ascii_lowercase(),
        props: posted
            .one("sender")
            .map(|m| vec![("smtp.mailfrom".to_owned(), m.to_owned())])
            .unwrap_or_default(),
    }];
    Some(decide(&results, from, "the provider's X-Mailgun-Spf field"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRUSTED: &str = "mx.comune.example.it";

    fn trusted() -> Vec<String> {
        vec![TRUSTED.to_owned()]
    }

    fn r(method: &str, result: &str, props: &[(&str, &str)]) -> MethodResult {
        MethodResult {
            method: method.to_owned(),
            result: result.to_owned(),
            props: props
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn headers_parse_with_comments_versions_quotes_and_folding() {
        let h = parse_header(
            " MX.Comune.Example.IT 1;\r\n\tspf=pass (mx: domain of\r\n anna@example.it designates 192.0.2.1 as permitted sender) smtp.mailfrom=anna@example.it;\r\n\
             dkim/1 = pass (2048-bit key; unprotected) header.d=example.it header.i=@example.it header.s=sel header.b=\"AbC;d=x\";\r\n\
             dmarc=pass (p=QUARANTINE sp=NONE dis=NONE) header.from=example.it; arc=none",
        )
        .expect("parses");
        assert_eq!(h.authserv_id, "mx.comune.example.it");
        assert_eq!(
            h.results,
            vec![
                r("spf", "pass", &[("smtp.mailfrom", "anna@example.it")]),
                r(
                    "dkim",
                    "pass",
                    &[
                        ("header.d", "example.it"),
                        ("header.i", "@example.it"),
                        ("header.s", "sel"),
                        ("header.b", "AbC;d=x"),
                    ]
                ),
                r("dmarc", "pass", &[("header.from", "example.it")]),
                r("arc", "none", &[]),
            ]
        );
        let none = parse_header("mx.comune.example.it; none").expect("parses");
        assert!(none.results.is_empty());
        let quoted = parse_header("\"mx (quoted)\"; spf=fail reason=\"a; b\" smtp.mailfrom=x.it")
            .expect("parses");
        assert_eq!(quoted.authserv_id, "mx (quoted)");
        assert_eq!(
            quoted.results,
            vec![r("spf", "fail", &[("smtp.mailfrom", "x.it")])]
        );
        assert_eq!(parse_header(""), None);
        assert_eq!(parse_header("spf=pass"), None);
        assert_eq!(parse_header(&"x".repeat(MAX_HEADER + 1)), None);
        // Unbalanced comments and quotes never panic.
        for junk in [
            "(((",
            "a; b=(c",
            "\"a; b",
            "a; =; ==; =x",
            "a;;;",
            "\\",
            "a; b=\"\\",
        ] {
            let _ = parse_header(junk);
        }
    }

    #[test]
    fn alignment_is_relaxed_but_never_to_a_bare_top_level_domain() {
        assert!(aligned("example.it", "example.it"));
        assert!(aligned("mail.example.it", "example.it"));
        assert!(aligned("anna@Example.IT", "example.it."));
        assert!(aligned("example.it", "newsletter.mail.example.it"));
        assert!(!aligned("example.it", "it"));
        assert!(!aligned("evil-example.it", "example.it"));
        assert!(!aligned("example.it.evil.com", "example.it"));
        assert!(!aligned("", "example.it"));
    }

    /// (results, From, expected verdict) — the decision table.
    #[test]
    fn the_decision_table() {
        let from = "anna@example.it";
        let table: Vec<(Vec<MethodResult>, Verdict)> = vec![
            (
                vec![r("dmarc", "pass", &[("header.from", "example.it")])],
                Verdict::Pass,
            ),
            (vec![r("dmarc", "pass", &[])], Verdict::Pass),
            (
                vec![r("dmarc", "pass", &[("header.from", "other.it")])],
                Verdict::Fail,
            ),
            (
                vec![
                    r("dmarc", "fail", &[("header.from", "example.it")]),
                    r("dkim", "pass", &[("header.d", "example.it")]),
                ],
                Verdict::Fail,
            ),
            (
                vec![
                    r("dmarc", "none", &[]),
                    r("dkim", "pass", &[("header.d", "mail.example.it")]),
                ],
                Verdict::Pass,
            ),
            (
                vec![r("dkim", "pass", &[("header.i", "@example.it")])],
                Verdict::Pass,
            ),
            (
                vec![r("dkim", "pass", &[("header.d", "evil.com")])],
                Verdict::Fail,
            ),
            (
                vec![r("dkim", "fail", &[("header.d", "example.it")])],
                Verdict::Fail,
            ),
            (
                vec![r("spf", "pass", &[("smtp.mailfrom", "bounce@example.it")])],
                Verdict::Pass,
            ),
            (
                vec![r("spf", "pass", &[("smtp.mailfrom", "evil.com")])],
                Verdict::Fail,
            ),
            (
                vec![r("spf", "softfail", &[("smtp.mailfrom", "example.it")])],
                Verdict::Fail,
            ),
            (
                vec![r("spf", "pass", &[("smtp.helo", "example.it")])],
                Verdict::Fail,
            ),
            (
                vec![
                    r("spf", "neutral", &[("smtp.mailfrom", "example.it")]),
                    r("dkim", "none", &[]),
                    r("dmarc", "temperror", &[]),
                ],
                Verdict::Fail,
            ),
            (vec![], Verdict::Fail),
        ];
        for (results, want) in table {
            assert_eq!(decide(&results, from, TRUSTED).verdict, want, "{results:?}");
        }
        assert_eq!(
            decide(&[r("dmarc", "pass", &[])], "no-domain", TRUSTED).verdict,
            Verdict::Pass,
            "a From without @ is its own domain"
        );
        assert_eq!(decide(&[], "", TRUSTED).verdict, Verdict::Fail);
        let reason = decide(&[r("spf", "softfail", &[])], from, TRUSTED).reason;
        assert!(
            reason.contains("spf=softfail") && reason.contains(TRUSTED),
            "{reason}"
        );
    }

    #[test]
    fn only_the_topmost_trusted_header_counts() {
        let forged = "mx.comune.example.it; dmarc=pass header.from=example.it".to_owned();
        let real = "mx.comune.example.it; spf=fail smtp.mailfrom=evil.com; dmarc=fail header.from=example.it".to_owned();
        let stranger = "mx.evil.com; dmarc=pass header.from=example.it".to_owned();
        // Top first: our relay's real verdict above the copy the sender added.
        let a = for_mailbox(
            &[stranger.clone(), real.clone(), forged.clone()],
            "anna@example.it",
            &trusted(),
        );
        assert_eq!(a.verdict, Verdict::Fail, "{a:?}");
        // Only a stranger's verdict: nothing trusted.
        let a = for_mailbox(
            std::slice::from_ref(&stranger),
            "anna@example.it",
            &trusted(),
        );
        assert_eq!(a.verdict, Verdict::Unknown);
        // No relay configured: nothing is trusted.
        let a = for_mailbox(std::slice::from_ref(&forged), "anna@example.it", &[]);
        assert_eq!(a.verdict, Verdict::Unknown);
        assert!(a.reason.contains("trusted_authserv_ids"), "{a:?}");
        let a = for_mailbox(&[forged], "anna@example.it", &trusted());
        assert_eq!(a.verdict, Verdict::Pass);
    }

    fn p(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const ANNA: &str = "Anna <anna@example.it>";

    #[test]
    fn sendgrid_fields_decide_with_the_envelope_sender_and_the_signing_domains() {
        let sg = |spf: &str, dkim: &str, env_from: &str| {
            for_webhook(
                &p(&[
                    ("from", ANNA),
                    ("SPF", spf),
                    ("dkim", dkim),
                    (
                        "envelope",
                        &format!("{{\"to\":[\"urp@comune.it\"],\"from\":\"{env_from}\"}}"),
                    ),
                ]),
                "anna@example.it",
                &[],
            )
            .verdict
        };
        assert_eq!(sg("pass", "none", "anna@example.it"), Verdict::Pass);
        assert_eq!(sg("pass", "none", "bounce@evil.com"), Verdict::Fail);
        assert_eq!(
            sg("softfail", "{@example.it : pass}", "x@evil.com"),
            Verdict::Pass
        );
        assert_eq!(
            sg(
                "fail",
                "{@evil.com : pass, @example.it : fail}",
                "x@evil.com"
            ),
            Verdict::Fail
        );
    }

    #[test]
    fn mailgun_fields_decide_by_spf_with_the_envelope_sender() {
        let mg = |spf: &str, sender: &str| {
            for_webhook(
                &p(&[
                    ("from", ANNA),
                    ("X-Mailgun-Spf", spf),
                    ("sender", sender),
                    ("X-Mailgun-Dkim-Check-Result", "Pass"),
                ]),
                "anna@example.it",
                &[],
            )
            .verdict
        };
        assert_eq!(mg("Pass", "anna@example.it"), Verdict::Pass);
        assert_eq!(mg("SoftFail", "anna@example.it"), Verdict::Fail);
        assert_eq!(mg("Pass", "x@evil.com"), Verdict::Fail);
    }

    #[test]
    fn a_verdict_field_given_twice_is_not_believed_and_none_at_all_is_unknown() {
        // A verdict field twice: a copy from the message, not believed.
        let twice = for_webhook(
            &p(&[
                ("X-Mailgun-Spf", "Pass"),
                ("x-mailgun-spf", "Fail"),
                ("sender", "anna@example.it"),
            ]),
            "anna@example.it",
            &[],
        );
        assert_eq!(twice.verdict, Verdict::Fail, "{twice:?}");
        assert!(
            twice
                .reason
                .contains("verdict field X-Mailgun-Spf was given more than once"),
            "{twice:?}"
        );
        // Nothing at all.
        assert_eq!(
            for_webhook(&p(&[("from", ANNA)]), "anna@example.it", &trusted()).verdict,
            Verdict::Unknown
        );
    }

    #[test]
    fn a_trusted_relays_header_among_the_fields_wins_and_an_untrusted_one_is_ignored() {
        // A trusted relay's header inside SendGrid's raw headers wins over the fields.
        let headers = "Received: from x\r\nAuthentication-Results: mx.comune.example.it;\r\n dmarc=fail header.from=example.it\r\nFrom: anna@example.it\r\n";
        let a = for_webhook(
            &p(&[
                ("headers", headers),
                ("SPF", "pass"),
                ("envelope", "{\"from\":\"anna@example.it\"}"),
            ]),
            "anna@example.it",
            &trusted(),
        );
        assert_eq!(a.verdict, Verdict::Fail, "{a:?}");
        // An untrusted relay's header is ignored; the provider's fields decide.
        let a = for_webhook(
            &p(&[
                ("Authentication-Results", "mx.evil.com; dmarc=pass"),
                ("SPF", "fail"),
                ("envelope", "{\"from\":\"anna@example.it\"}"),
            ]),
            "anna@example.it",
            &trusted(),
        );
        assert_eq!(a.verdict, Verdict::Fail, "{a:?}");
    }

    proptest::proptest! {
        /// Any header value, any posted fields: no panic, and never a pass without a trusted
        /// source.
        #[test]
        fn anything_parses_without_panic_and_nothing_untrusted_passes(
            value in "[ -~\t\r\n]{0,200}",
            fields in proptest::collection::vec(("[A-Za-z-]{1,12}", "[ -~]{0,60}"), 0..6),
        ) {
            let _ = parse_header(&value);
            let _ = for_mailbox(std::slice::from_ref(&value), "a@example.it", &trusted());
            proptest::prop_assert!(!for_mailbox(std::slice::from_ref(&value), "a@example.it", &[]).passed());
            let pairs: Vec<(String, String)> = fields
                .into_iter()
                .filter(|(k, _)| {
                    !["spf", "dkim", "x-mailgun-spf", "headers", "authentication-results"]
                        .contains(&k.to_ascii_lowercase().as_str())
                })
                .collect();
            proptest::prop_assert!(!for_webhook(&pairs, "a@example.it", &trusted()).passed());
        }
    }

    #[test]
    fn the_mode_decides_what_an_unauthenticated_reply_does() {
        let pass = MailAuth::new(Verdict::Pass, "dmarc=pass");
        let fail = MailAuth::new(Verdict::Fail, "dmarc=fail");
        let unknown = MailAuth::new(Verdict::Unknown, "no trusted relay");
        assert_eq!(may_resume(MailAuthMode::Require, Some(&pass)), Ok(()));
        assert_eq!(
            may_resume(MailAuthMode::Require, Some(&fail)),
            Err(NotAuthenticated::Judged("dmarc=fail".to_owned()))
        );
        assert_eq!(
            may_resume(MailAuthMode::Require, Some(&unknown)),
            Err(NotAuthenticated::Judged("no trusted relay".to_owned()))
        );
        let never = may_resume(MailAuthMode::Require, None);
        assert_eq!(never, Err(NotAuthenticated::NotJudged));
        assert_eq!(
            never.map_err(|e| e.to_string()),
            Err("the sender was not authenticated".to_owned())
        );
        for a in [Some(&pass), Some(&fail), Some(&unknown), None] {
            assert_eq!(may_resume(MailAuthMode::Off, a), Ok(()));
        }
        assert_eq!(MailAuthMode::default(), MailAuthMode::Require);
    }
}
