//! `dns.spf`, `dns.dmarc`, `dns.dkim`: the sender domain's records as receivers read them.
//!
//! - SPF (RFC 7208): exactly one `v=spf1` TXT record at the domain, ending in `-all` or `~all`
//!   (or delegating with `redirect=`); `?all` and `+all` let anyone send as the domain.
//! - DMARC (RFC 7489): a `v=DMARC1` record at `_dmarc.<domain>`; `p=none` only reports.
//! - DKIM (RFC 6376): with `[smtp.dkim]`, a key at `<selector>._domainkey.<domain>`, compared
//!   with the configured key when the caller can compute its record.

use std::net::SocketAddr;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

use super::{Finding, Options};
use crate::config::{Config, Dkim, DkimAlgorithm};

const DKIM_DOCS: &str = "docs/operations.md, section DKIM";

/// A resolver asking `nameserver` (UDP and TCP), or the system's resolvers.
pub fn resolver(
    nameserver: Option<SocketAddr>,
    timeout: std::time::Duration,
) -> Result<TokioResolver, String> {
    let mut builder = match nameserver {
        Some(addr) => {
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            let ns = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![ns]),
                TokioRuntimeProvider::default(),
            )
        }
        None => TokioResolver::builder_tokio()
            .map_err(|e| format!("cannot read the system's resolver configuration: {e}"))?,
    };
    let opts = builder.options_mut();
    opts.timeout = timeout;
    opts.attempts = 1;
    builder.build().map_err(|e| e.to_string())
}

/// The TXT records at `name`, each as its strings joined (RFC 7208 §3.3); empty when the name
/// or the records do not exist.
pub async fn txt(resolver: &TokioResolver, name: &str) -> Result<Vec<String>, String> {
    let fqdn = if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    };
    match resolver.txt_lookup(fqdn.as_str()).await {
        Ok(lookup) => Ok(lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(t) => Some(
                    t.txt_data
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect()),
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
        Err(e) => Err(format!("looking up TXT {name}: {e}")),
    }
}

/// The sender domain: `notify.sender_email`'s.
fn sender_domain(config: &Config) -> Option<String> {
    config
        .notify
        .sender_email
        .rsplit_once('@')
        .map(|(_, d)| d.trim().trim_end_matches('>').to_ascii_lowercase())
        .filter(|d| !d.is_empty())
}

/// The three checks for `config`'s sender domain (skipped when no e-mail leaves through SMTP).
pub async fn check(config: &Config, options: &Options) -> Vec<Finding> {
    let Some(smtp) = &config.smtp else {
        return ["dns.spf", "dns.dmarc", "dns.dkim"]
            .into_iter()
            .map(|c| Finding::skip(c, "no [smtp] account: no e-mail leaves through SMTP"))
            .collect();
    };
    let Some(domain) = sender_domain(config) else {
        return vec![Finding::fail(
            "dns.spf",
            "notify.sender_email has no domain",
            "set notify.sender_email to the comune's address",
        )];
    };
    let resolver = match resolver(options.nameserver, options.timeout) {
        Ok(r) => r,
        Err(e) => {
            return ["dns.spf", "dns.dmarc", "dns.dkim"]
                .into_iter()
                .map(|c| Finding::fail(c, e.clone(), "check /etc/resolv.conf"))
                .collect();
        }
    };
    let lookup = |name: String| {
        let resolver = &resolver;
        async move {
            let t = options.timeout + options.timeout;
            match tokio::time::timeout(t, txt(resolver, &name)).await {
                Ok(r) => r,
                Err(_) => Err(format!(
                    "looking up TXT {name}: no answer in {} s",
                    t.as_secs()
                )),
            }
        }
    };
    let dkim_name = smtp
        .dkim
        .as_ref()
        .map(|d| format!("{}._domainkey.{}", d.selector, d.domain));
    let (spf, dmarc, dkim) = tokio::join!(
        lookup(domain.clone()),
        lookup(format!("_dmarc.{domain}")),
        async {
            match &dkim_name {
                Some(n) => Some(lookup(n.clone()).await),
                None => None,
            }
        }
    );
    let resolve_fix = "check that this machine can resolve names (/etc/resolv.conf) and that the \
                       domain's name servers answer";
    let mut out = Vec::new();
    out.push(match spf {
        Ok(records) => spf_finding(&domain, &records),
        Err(e) => Finding::fail("dns.spf", e, resolve_fix),
    });
    out.push(match dmarc {
        Ok(records) => dmarc_finding(&domain, &records),
        Err(e) => Finding::fail("dns.dmarc", e, resolve_fix),
    });
    out.push(match (&smtp.dkim, dkim) {
        (Some(d), Some(Ok(records))) => dkim_finding(d, &domain, &records, options.dkim_record),
        (_, Some(Err(e))) => Finding::fail("dns.dkim", e, resolve_fix),
        _ => Finding::warn(
            "dns.dkim",
            "no DKIM key is configured: Messo sends its mail unsigned",
            format!(
                "configure [smtp.dkim] and publish its key ({DKIM_DOCS}), unless the relay at \
                 smtp.host signs for {domain}"
            ),
        ),
    });
    out
}

/// Whether `record` starts with the tag `v=<version>` (case-insensitive), as SPF and DMARC
/// records must.
fn is_version(record: &str, version: &str) -> bool {
    let r = record.trim_start();
    let lower = r.to_ascii_lowercase();
    let want = format!("v={}", version.to_ascii_lowercase());
    lower.starts_with(&want)
        && lower[want.len()..]
            .chars()
            .next()
            .is_none_or(|c| c == ' ' || c == ';')
}

/// `dns.spf` from the TXT records at `domain`.
pub fn spf_finding(domain: &str, records: &[String]) -> Finding {
    let spf: Vec<&String> = records.iter().filter(|r| is_version(r, "spf1")).collect();
    let example =
        "\"v=spf1 mx include:<your provider's SPF> -all\" (the relay at smtp.host must be covered)";
    let record = match spf.as_slice() {
        [] => {
            return Finding::fail(
                "dns.spf",
                format!(
                    "{domain} has no SPF record: receivers cannot tell our relay from a forger"
                ),
                format!("publish one TXT record at {domain}: {example}"),
            );
        }
        [one] => *one,
        many => {
            return Finding::fail(
                "dns.spf",
                format!(
                    "{domain} has {} SPF records: receivers treat that as a permanent error \
                     (RFC 7208 §4.5) and SPF fails for every message",
                    many.len()
                ),
                format!("merge them into one TXT record at {domain}"),
            );
        }
    };
    let terms: Vec<String> = record
        .split_ascii_whitespace()
        .skip(1)
        .map(str::to_ascii_lowercase)
        .collect();
    let all = terms.iter().find(|t| {
        let t = t.trim_start_matches(['+', '-', '~', '?']);
        t == "all"
    });
    match all.map(String::as_str) {
        Some("-all") | Some("~all") => {
            Finding::ok("dns.spf", format!("{domain}: \"{}\"", record.trim()))
        }
        Some(q @ ("?all" | "+all" | "all")) => Finding::warn(
            "dns.spf",
            format!(
                "{domain}'s SPF record ends in {q}: {}",
                if q == "?all" {
                    "it says nothing about other senders, so forged mail is not refused"
                } else {
                    "it lets any server on the Internet send as the domain"
                }
            ),
            format!("end the record at {domain} with -all (or ~all while you test)"),
        ),
        _ if terms.iter().any(|t| t.starts_with("redirect=")) => Finding::ok(
            "dns.spf",
            format!("{domain}: \"{}\" (delegated by redirect=)", record.trim()),
        ),
        _ => Finding::warn(
            "dns.spf",
            format!("{domain}'s SPF record has no all mechanism: other senders are neutral"),
            format!("end the record at {domain} with -all (or ~all while you test)"),
        ),
    }
}

/// The value of tag `name` in a `tag=value; …` record (DMARC, DKIM).
fn tag<'r>(record: &'r str, name: &str) -> Option<&'r str> {
    record.split(';').find_map(|part| {
        let (k, v) = part.split_once('=')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// `dns.dmarc` from the TXT records at `_dmarc.<domain>`.
pub fn dmarc_finding(domain: &str, records: &[String]) -> Finding {
    let at = format!("_dmarc.{domain}");
    let example = format!("\"v=DMARC1; p=quarantine; rua=mailto:dmarc@{domain}\"");
    let dmarc: Vec<&String> = records.iter().filter(|r| is_version(r, "DMARC1")).collect();
    let record = match dmarc.as_slice() {
        [] => {
            return Finding::warn(
                "dns.dmarc",
                format!(
                    "{at} has no DMARC record: Gmail and Outlook expect one, and forged mail \
                     from {domain} is not refused"
                ),
                format!("publish a TXT record at {at}: {example}"),
            );
        }
        [one] => *one,
        many => {
            return Finding::fail(
                "dns.dmarc",
                format!(
                    "{at} has {} DMARC records: receivers then apply none (RFC 7489 §6.6.3)",
                    many.len()
                ),
                format!("keep one TXT record at {at}"),
            );
        }
    };
    match tag(record, "p").map(str::to_ascii_lowercase).as_deref() {
        Some(p @ ("quarantine" | "reject")) => Finding::ok("dns.dmarc", format!("{at}: p={p}")),
        Some("none") => Finding::warn(
            "dns.dmarc",
            format!("{at}: p=none only asks for reports; forged mail is still delivered"),
            format!(
                "once the reports show only your own servers, set p=quarantine (then p=reject) at {at}"
            ),
        ),
        _ => Finding::warn(
            "dns.dmarc",
            format!("{at}: the DMARC record has no valid p= policy, so receivers ignore it"),
            format!("publish a TXT record at {at}: {example}"),
        ),
    }
}

/// The `p=` of a DKIM record without its spaces.
fn dkim_key(record: &str) -> Option<String> {
    tag(record, "p").map(|p| p.chars().filter(|c| !c.is_whitespace()).collect())
}

/// `dns.dkim` from the TXT records at `<selector>._domainkey.<d.domain>`.
pub fn dkim_finding(
    d: &Dkim,
    sender_domain: &str,
    records: &[String],
    expected: Option<super::DkimRecordFn>,
) -> Finding {
    let at = format!("{}._domainkey.{}", d.selector, d.domain);
    let expected = expected.map(|f| f(d));
    let publish = match &expected {
        Some(Ok(r)) => format!("publish a TXT record at {at}: \"{r}\""),
        _ => format!(
            "publish the public key of smtp.dkim.private_key as a TXT record at {at} \
             ({DKIM_DOCS})"
        ),
    };
    // A DKIM key record: v=DKIM1 first when present, and a p= tag.
    let keys: Vec<&String> = records
        .iter()
        .filter(|r| {
            let starts = r.trim_start().to_ascii_lowercase();
            (starts.starts_with("v=dkim1") || !starts.starts_with("v=")) && tag(r, "p").is_some()
        })
        .collect();
    let record = match keys.as_slice() {
        [] => {
            return Finding::fail(
                "dns.dkim",
                format!("{at} has no DKIM key: receivers cannot verify Messo's signatures"),
                publish,
            );
        }
        [one] => *one,
        many => {
            return Finding::fail(
                "dns.dkim",
                format!(
                    "{at} has {} DKIM records; receivers need exactly one",
                    many.len()
                ),
                publish,
            );
        }
    };
    let published = dkim_key(record).unwrap_or_default();
    if published.is_empty() {
        return Finding::fail(
            "dns.dkim",
            format!("{at}: the key is revoked (empty p=)"),
            publish,
        );
    }
    let k = tag(record, "k").unwrap_or("rsa").to_ascii_lowercase();
    let want_k = match d.algorithm {
        DkimAlgorithm::RsaSha256 => "rsa",
        DkimAlgorithm::Ed25519Sha256 => "ed25519",
    };
    if k != want_k {
        return Finding::fail(
            "dns.dkim",
            format!("{at} publishes a k={k} key, but smtp.dkim.algorithm signs with {want_k}"),
            publish,
        );
    }
    let aligned = sender_domain == d.domain || sender_domain.ends_with(&format!(".{}", d.domain));
    match expected {
        Some(Ok(r)) => {
            if dkim_key(&r).is_some_and(|want| want == published) {
                if aligned {
                    Finding::ok(
                        "dns.dkim",
                        format!("{at}: the published key is the configured one"),
                    )
                } else {
                    alignment(&at, sender_domain, &d.domain)
                }
            } else {
                Finding::fail(
                    "dns.dkim",
                    format!(
                        "{at}: the published key is not the configured one: signatures will not \
                         verify"
                    ),
                    publish,
                )
            }
        }
        Some(Err(e)) => Finding::fail(
            "dns.dkim",
            format!("the configured DKIM key cannot be read: {e}"),
            "check MESSO_SMTP__DKIM__PRIVATE_KEY_FILE",
        ),
        None if aligned => Finding::ok(
            "dns.dkim",
            format!("{at}: a k={k} key is published (not compared with the configured key)"),
        ),
        None => alignment(&at, sender_domain, &d.domain),
    }
}

fn alignment(at: &str, sender_domain: &str, dkim_domain: &str) -> Finding {
    Finding::warn(
        "dns.dkim",
        format!(
            "{at}: a key is published, but d={dkim_domain} is not the sender's domain \
             {sender_domain}, so DMARC does not count the signature"
        ),
        format!(
            "set smtp.dkim.domain to {sender_domain} (or a parent of it) and publish the key there"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn spf_records_are_judged() {
        let d = "comune.example.it";
        assert_eq!(spf_finding(d, &s(&["v=spf1 mx -all"])).status, Status::Ok);
        assert_eq!(
            spf_finding(d, &s(&["google-site=x", "v=spf1 ~all"])).status,
            Status::Ok
        );
        assert_eq!(spf_finding(d, &s(&["v=spf1 +all"])).status, Status::Warn);
        assert_eq!(spf_finding(d, &s(&["v=spf1 mx ?all"])).status, Status::Warn);
        assert_eq!(spf_finding(d, &s(&["v=spf1 mx"])).status, Status::Warn);
        assert_eq!(
            spf_finding(d, &s(&["v=spf1 redirect=_spf.x.it"])).status,
            Status::Ok
        );
        assert_eq!(spf_finding(d, &s(&["v=spf10 -all"])).status, Status::Fail);
        assert_eq!(
            spf_finding(d, &s(&["v=spf1 -all", "v=spf1 mx -all"])).status,
            Status::Fail
        );
        assert_eq!(spf_finding(d, &[]).status, Status::Fail);
    }

    #[test]
    fn dmarc_policies_are_judged() {
        let d = "comune.example.it";
        assert_eq!(
            dmarc_finding(d, &s(&["v=DMARC1; p=reject"])).status,
            Status::Ok
        );
        assert_eq!(
            dmarc_finding(d, &s(&["v=DMARC1;p=Quarantine"])).status,
            Status::Ok
        );
        assert_eq!(
            dmarc_finding(d, &s(&["v=DMARC1; p=none"])).status,
            Status::Warn
        );
        assert_eq!(
            dmarc_finding(d, &s(&["v=DMARC1; rua=x"])).status,
            Status::Warn
        );
        assert_eq!(dmarc_finding(d, &[]).status, Status::Warn);
    }
}
