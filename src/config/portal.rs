//! The `[portal]` section: the citizen's status page and the portal feed — how links are signed
//! and how long they last, who may call the feed, and how fast one client may ask.

use std::net::IpAddr;

use serde::Deserialize;

use super::Problems;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPortal {
    enabled: Option<bool>,
    base_url: Option<String>,
    link_key: Option<String>,
    previous_link_key: Option<String>,
    link_valid_days: Option<i64>,
    requests_per_minute: Option<i64>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    show_office: Option<bool>,
    token_requests_per_minute: Option<i64>,
    enumeration_alarm_per_hour: Option<i64>,
}

/// The `[portal]` section.
#[derive(Clone, PartialEq, Eq)]
pub struct Portal {
    /// Serve the status page and the citizen feed, and put a status link in citizens' messages.
    pub enabled: bool,
    /// Where citizens open their links (default: `http.public_base_url`), no trailing slash.
    pub base_url: String,
    /// The key links are signed with (at least 32 characters). `None`: a key generated once and
    /// kept in the store, shared by every daemon on it.
    pub link_key: Option<String>,
    /// A key being retired: links it signed still open.
    pub previous_link_key: Option<String>,
    /// How long a link opens after the message that carried it was written.
    pub link_valid_days: u16,
    /// Requests one client may make per minute without a portal token.
    pub requests_per_minute: u32,
    /// Peers whose `X-Forwarded-For` names the client (a reverse proxy in front of Messo).
    pub trusted_proxies: Vec<IpAddr>,
    /// Show the name of the office handling the request.
    pub show_office: bool,
    /// Requests one portal token may make per minute to the citizen feed.
    pub token_requests_per_minute: u32,
    /// Distinct codici fiscali one portal token may ask about in an hour before an audit alarm
    /// is raised (an enumeration pattern).
    pub enumeration_alarm_per_hour: u32,
}

impl std::fmt::Debug for Portal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |k: &Option<String>| k.as_ref().map(|_| "<redacted>");
        f.debug_struct("Portal")
            .field("enabled", &self.enabled)
            .field("base_url", &self.base_url)
            .field("link_key", &redacted(&self.link_key))
            .field("previous_link_key", &redacted(&self.previous_link_key))
            .field("link_valid_days", &self.link_valid_days)
            .field("requests_per_minute", &self.requests_per_minute)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("show_office", &self.show_office)
            .field("token_requests_per_minute", &self.token_requests_per_minute)
            .field(
                "enumeration_alarm_per_hour",
                &self.enumeration_alarm_per_hour,
            )
            .finish()
    }
}

/// Link keys shorter than this are refused.
pub const MIN_LINK_KEY_CHARS: usize = 32;

fn key(p: &mut Problems, name: &str, v: Option<String>) -> Option<String> {
    let v = v.filter(|s| !s.is_empty())?;
    if v.chars().count() < MIN_LINK_KEY_CHARS {
        p.add(
            name,
            format!(
                "must be at least {MIN_LINK_KEY_CHARS} characters (make one with `openssl rand -hex 32`; \
                 put it in MESSO_{}_FILE)",
                name.to_ascii_uppercase().replace('.', "__")
            ),
        );
        return None;
    }
    Some(v)
}

pub(super) fn portal(p: &mut Problems, raw: RawPortal, public_base_url: &str) -> Portal {
    let base_url = raw.base_url.unwrap_or_else(|| public_base_url.to_owned());
    if !(base_url.starts_with("http://") || base_url.starts_with("https://"))
        || base_url.ends_with('/')
    {
        p.add(
            "portal.base_url",
            format!(
                "expected an http:// or https:// URL without a trailing slash, found {base_url:?}"
            ),
        );
    }
    let link_key = key(p, "portal.link_key", raw.link_key);
    let previous_link_key = key(p, "portal.previous_link_key", raw.previous_link_key);
    if previous_link_key.is_some() && link_key.is_none() {
        p.add(
            "portal.previous_link_key",
            "a previous key needs a current one in portal.link_key",
        );
    }
    let link_valid_days =
        p.ranged("portal.link_valid_days", raw.link_valid_days, 180, 1, 3650) as u16;
    let requests_per_minute = p.ranged(
        "portal.requests_per_minute",
        raw.requests_per_minute,
        60,
        1,
        1_000_000,
    ) as u32;
    let mut trusted_proxies = Vec::new();
    for (i, s) in raw.trusted_proxies.iter().enumerate() {
        match s.parse::<IpAddr>() {
            Ok(ip) => trusted_proxies.push(ip),
            Err(_) => p.add(
                format!("portal.trusted_proxies[{i}]"),
                format!("expected an IP address like \"127.0.0.1\", found {s:?}"),
            ),
        }
    }
    let token_requests_per_minute = p.ranged(
        "portal.token_requests_per_minute",
        raw.token_requests_per_minute,
        600,
        1,
        1_000_000,
    ) as u32;
    let enumeration_alarm_per_hour = p.ranged(
        "portal.enumeration_alarm_per_hour",
        raw.enumeration_alarm_per_hour,
        300,
        1,
        1_000_000,
    ) as u32;
    Portal {
        enabled: raw.enabled.unwrap_or(true),
        base_url,
        link_key,
        previous_link_key,
        link_valid_days,
        requests_per_minute,
        trusted_proxies,
        show_office: raw.show_office.unwrap_or(true),
        token_requests_per_minute,
        enumeration_alarm_per_hour,
    }
}
