//! The `[io]` section: messages in the public services app IO (PagoPA), sent through the IO
//! Services API with the office's service key. Off by default: an office turns it on once its
//! service is published in IO and its subscription key is in the credentials.

use serde::Deserialize;

use super::Problems;
use crate::domain::Kind;
use messo_core::delivery::route::IO_KINDS;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIo {
    enabled: Option<bool>,
    base_url: Option<String>,
    api_key: Option<String>,
    kinds: Option<Vec<String>>,
    feature_level: Option<String>,
    time_to_live_s: Option<i64>,
    timeout_s: Option<i64>,
    connect_timeout_s: Option<i64>,
    concurrency: Option<i64>,
    profile_cache_s: Option<i64>,
    unread_after_h: Option<i64>,
    also_written_when_unread: Option<Vec<String>>,
}

/// The IO message's feature level: `STANDARD`, or `ADVANCED` (read status available to the
/// sender, when the citizen allows it; a premium feature of the service).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureLevel {
    Standard,
    Advanced,
}

impl FeatureLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            FeatureLevel::Standard => "STANDARD",
            FeatureLevel::Advanced => "ADVANCED",
        }
    }
}

/// `[io]`, when enabled.
#[derive(Clone, PartialEq, Eq)]
pub struct Io {
    /// The API root, `https://api.io.pagopa.it/api/v1` (tests point it at a local stub).
    pub base_url: String,
    /// The service's subscription key (`Ocp-Apim-Subscription-Key`).
    pub api_key: String,
    /// The citizen notices that go to IO first.
    pub kinds: Vec<Kind>,
    pub feature_level: FeatureLevel,
    /// How long IO tries to notify the citizen's devices (3,600–604,800 s).
    pub time_to_live_s: u32,
    pub timeout_s: u32,
    pub connect_timeout_s: u32,
    /// Requests in flight at once at most.
    pub concurrency: u32,
    /// How long a profile check (`sender_allowed`) is trusted, in seconds (0: every message).
    pub profile_cache_s: u32,
    /// After this many hours, a notice of `also_written_when_unread` that the citizen has not
    /// read in IO also goes by the written route.
    pub unread_after_h: u32,
    /// The notices that matter enough that IO alone does not replace e-mail or SMS while
    /// unread (empty: IO replaces them).
    pub also_written_when_unread: Vec<Kind>,
}

impl std::fmt::Debug for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Io")
            .field("base_url", &self.base_url)
            .field("kinds", &self.kinds)
            .field("feature_level", &self.feature_level)
            .finish_non_exhaustive()
    }
}

/// A list of notice kinds IO may carry, each named by its key on a problem.
fn kinds(p: &mut Problems, key: &str, raw: Option<Vec<String>>, default: &[Kind]) -> Vec<Kind> {
    let Some(list) = raw else {
        return default.to_vec();
    };
    let mut out = Vec::new();
    for (i, name) in list.iter().enumerate() {
        match Kind::parse(name.trim()).filter(|k| IO_KINDS.contains(k)) {
            Some(k) if !out.contains(&k) => out.push(k),
            Some(_) => {}
            None => p.add(
                format!("{key}[{i}]"),
                format!(
                    "{name:?} is not a notice IO carries; expected one of {}",
                    IO_KINDS.map(Kind::as_str).join(", ")
                ),
            ),
        }
    }
    out
}

/// `[io]`: none unless `enabled`; every missing or faulty key is named.
pub(super) fn io(p: &mut Problems, raw: RawIo) -> Option<Io> {
    if !raw.enabled.unwrap_or(false) {
        return None;
    }
    let api_key = match raw.api_key.map(|s| s.trim().to_owned()) {
        Some(k) if k.chars().count() >= 16 => k,
        Some(k) if !k.is_empty() => {
            p.add(
                "io.api_key",
                "the subscription key must be at least 16 characters (the value is not shown)",
            );
            String::new()
        }
        _ => {
            p.add(
                "io.api_key",
                "is required when io.enabled = true (set MESSO_IO__API_KEY_FILE to a credential file)",
            );
            String::new()
        }
    };
    let base_url = raw
        .base_url
        .unwrap_or_else(|| "https://api.io.pagopa.it/api/v1".to_owned())
        .trim()
        .trim_end_matches('/')
        .to_owned();
    if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
        p.add("io.base_url", "expected an http:// or https:// URL");
    }
    let feature_level = match raw.feature_level.as_deref().map(str::trim) {
        None | Some("STANDARD") | Some("standard") => FeatureLevel::Standard,
        Some("ADVANCED") | Some("advanced") => FeatureLevel::Advanced,
        Some(other) => {
            p.add(
                "io.feature_level",
                format!("unknown level {other:?}; expected STANDARD|ADVANCED"),
            );
            FeatureLevel::Standard
        }
    };
    let kinds_list = kinds(p, "io.kinds", raw.kinds, &IO_KINDS);
    let also = kinds(
        p,
        "io.also_written_when_unread",
        raw.also_written_when_unread,
        &[Kind::RichiestaIntegrazione, Kind::Violazione],
    );
    Some(Io {
        base_url,
        api_key,
        kinds: kinds_list,
        feature_level,
        time_to_live_s: p.ranged(
            "io.time_to_live_s",
            raw.time_to_live_s,
            604_800,
            3600,
            604_800,
        ) as u32,
        timeout_s: p.ranged("io.timeout_s", raw.timeout_s, 10, 1, 120) as u32,
        connect_timeout_s: p.ranged("io.connect_timeout_s", raw.connect_timeout_s, 5, 1, 60) as u32,
        concurrency: p.ranged("io.concurrency", raw.concurrency, 64, 1, 512) as u32,
        profile_cache_s: p.ranged("io.profile_cache_s", raw.profile_cache_s, 3600, 0, 86_400)
            as u32,
        unread_after_h: p.ranged("io.unread_after_h", raw.unread_after_h, 48, 1, 720) as u32,
        also_written_when_unread: also,
    })
}
