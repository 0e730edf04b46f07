//! The citizen's digital domicile (CAD art. 3-bis), looked up in INAD — the national index of
//! digital domiciles — through PDND ([`super::pdnd`]), and kept in the store's cache, where the
//! engine reads it when it routes a legally relevant notice
//! ([`messo_core::delivery::route`]).
//!
//! The look-up: `GET {base_url}/extract/{codice fiscale}?practicalReference=…` with the
//! voucher as a Bearer token. A 200 lists the citizen's addresses; the first one still valid
//! (no `usageInfo`, or a `dateEndValidity` still to come) that is an address our PEC channel
//! can send to is the domicile. A 404 means the citizen elected none: an answer, cached like a
//! domicile. A 401 means the voucher is no longer good: it is dropped and the look-up tried
//! once more with a new one. Anything else is a failure: nothing is cached, the code is asked
//! again on the next pass, and meanwhile the office's own record is what routing uses.
//!
//! The edge is defended: the codice fiscale is checked before it goes into a URL, every request
//! is bounded in time and every answer in size, and the code is masked in every log line.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde::Deserialize;

use super::pdnd::{PdndClient, PdndError, problem_detail, read_bounded, transport};
use crate::config::Inad;
use crate::domain::{EmailAddress, FiscalCode};
use crate::metrics::Metrics;
use crate::redact::mask;
use crate::store::{DomicileError, Store};
use crate::time::Timestamp;

/// The largest answer read from INAD.
pub const MAX_BODY: usize = 64 * 1024;

/// What `source` the cache records for INAD's answers.
pub const SOURCE: &str = "inad";

/// Why the INAD client cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum InadSetupError {
    #[error(transparent)]
    Pdnd(#[from] PdndError),
    #[error("domicile.inad: HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Why a look-up gave no answer. The messages never carry the codice fiscale.
#[derive(Debug, thiserror::Error)]
pub enum InadError {
    #[error("not a valid codice fiscale: not looked up")]
    FiscalCode,
    #[error("no PDND voucher: {0}")]
    Voucher(#[from] PdndError),
    #[error("INAD: {0}")]
    Transport(String),
    #[error("INAD answered {status} ({kind}): {detail}")]
    Refused {
        status: u16,
        kind: String,
        detail: String,
    },
    #[error("INAD: unreadable answer: {0}")]
    Answer(String),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Extract {
    #[serde(default)]
    digital_address: Vec<ExtractAddress>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExtractAddress {
    digital_address: String,
    #[serde(default)]
    usage_info: Option<UsageInfo>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageInfo {
    #[serde(default)]
    date_end_validity: Option<String>,
}

/// The domicile in a 200 answer's `body`, as valid at `now`: the first address with no end of
/// validity, or one still to come, that parses as an address our PEC channel sends to. An
/// answer with none is "no domicile".
pub fn domicile_in(body: &[u8], now: Timestamp) -> Result<Option<String>, InadError> {
    let extract: Extract =
        serde_json::from_slice(body).map_err(|e| InadError::Answer(e.to_string()))?;
    for a in extract.digital_address {
        let still_valid = match a.usage_info.and_then(|u| u.date_end_validity) {
            None => true,
            Some(end) => match chrono::DateTime::parse_from_rfc3339(end.trim()) {
                Ok(end) => end.timestamp() > now.0,
                // An end we cannot read is not taken as "still valid".
                Err(_) => false,
            },
        };
        if !still_valid {
            continue;
        }
        match EmailAddress::parse(a.digital_address.trim()) {
            Ok(pec) => return Ok(Some(pec.as_str().to_owned())),
            Err(e) => {
                tracing::warn!(error = %e, "INAD listed an address we cannot send to; skipped")
            }
        }
    }
    Ok(None)
}

/// A code whose look-up keeps failing is held back a while, so that a few such codes cannot
/// fill every pass: a minute after the first failure, doubling up to an hour.
const HOLD_FIRST_S: i64 = 60;
const HOLD_MOST_S: i64 = 3600;
/// Codes remembered as failing at most (beyond it the memory starts again).
const HOLD_MAX_CODES: usize = 10_000;

/// Looks codici fiscali up in INAD.
pub struct InadClient {
    config: Inad,
    pdnd: PdndClient,
    http: reqwest::Client,
    /// Codes whose look-up failed: how many times in a row, and when they may be asked again.
    held: std::sync::Mutex<std::collections::HashMap<String, (u32, Timestamp)>>,
}

impl std::fmt::Debug for InadClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the codes held back.
        f.debug_struct("InadClient")
            .field("config", &self.config)
            .field("pdnd", &self.pdnd)
            .finish_non_exhaustive()
    }
}

impl InadClient {
    pub fn new(config: &Inad) -> Result<InadClient, InadSetupError> {
        crate::install_crypto();
        let timeout = Duration::from_secs(u64::from(config.timeout_s));
        let pdnd = PdndClient::new(&config.pdnd, timeout)?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(InadClient {
            config: config.clone(),
            pdnd,
            http,
            held: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    fn held(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (u32, Timestamp)>> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the pass may ask about `fiscal_code` at `now` (not held back after failures).
    pub fn due(&self, fiscal_code: &str, now: Timestamp) -> bool {
        self.held()
            .get(fiscal_code)
            .is_none_or(|(_, next)| *next <= now)
    }

    /// Remembers that the look-up of `fiscal_code` failed at `now`.
    fn failed(&self, fiscal_code: &str, now: Timestamp) {
        let mut held = self.held();
        if held.len() >= HOLD_MAX_CODES && !held.contains_key(fiscal_code) {
            held.clear();
        }
        let entry = held.entry(fiscal_code.to_owned()).or_insert((0, now));
        entry.0 = entry.0.saturating_add(1);
        let wait = HOLD_FIRST_S
            .saturating_mul(1_i64 << entry.0.saturating_sub(1).min(10))
            .min(HOLD_MOST_S);
        entry.1 = now.plus(wait);
    }

    /// Forgets the failures of `fiscal_code` (it was answered).
    fn answered(&self, fiscal_code: &str) {
        self.held().remove(fiscal_code);
    }

    pub fn config(&self) -> &Inad {
        &self.config
    }

    /// The PDND client (how many vouchers it bought: tests and logs).
    pub fn pdnd(&self) -> &PdndClient {
        &self.pdnd
    }

    /// The digital domicile of `fiscal_code` at `now`: `Some(pec)`, or `None` when the citizen
    /// elected none.
    pub async fn lookup(
        &self,
        fiscal_code: &str,
        now: Timestamp,
    ) -> Result<Option<String>, InadError> {
        // Only a well-formed code goes into the path.
        let cf = FiscalCode::parse(fiscal_code).map_err(|_| InadError::FiscalCode)?;
        let voucher = self.pdnd.voucher(now).await?;
        match self.extract(&cf, &voucher, now).await {
            Err(InadError::Refused { status: 401, .. }) => {
                tracing::info!(cf = %mask(cf.as_str()), "INAD refused the voucher; buying a new one");
                self.pdnd.forget(&voucher).await;
                let voucher = self.pdnd.voucher(now).await?;
                self.extract(&cf, &voucher, now).await
            }
            other => other,
        }
    }

    async fn extract(
        &self,
        cf: &FiscalCode,
        voucher: &str,
        now: Timestamp,
    ) -> Result<Option<String>, InadError> {
        let url = format!("{}/extract/{}", self.config.base_url, cf.as_str());
        let resp = self
            .http
            .get(url)
            .query(&[(
                "practicalReference",
                self.config.practical_reference.as_str(),
            )])
            .bearer_auth(voucher)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| InadError::Transport(transport(e)))?;
        let status = resp.status().as_u16();
        let body = read_bounded(resp, MAX_BODY)
            .await
            .map_err(InadError::Transport)?;
        match status {
            200 => domicile_in(&body, now),
            404 => Ok(None),
            _ => {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let kind = v["type"]
                    .as_str()
                    .unwrap_or("no type")
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(100)
                    .collect();
                // The detail may repeat the code: masked like everywhere else.
                let detail = problem_detail(&body).replace(cf.as_str(), &mask(cf.as_str()));
                Err(InadError::Refused {
                    status,
                    kind,
                    detail,
                })
            }
        }
    }
}

/// What one pass of [`resolve_domiciles`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DomicileReport {
    /// Codes with a domicile.
    pub found: u64,
    /// Codes INAD has no domicile for.
    pub none: u64,
    /// Codes whose look-up failed (nothing cached: asked again next pass).
    pub failed: u64,
}

/// Looks up at most `[domicile.inad] per_pass` codici fiscali of open tickets whose cached
/// answer is missing or stale, a few at a time, and caches each answer for `cache_days`. A
/// failed look-up is counted and logged, never cached: the code is asked again on a later pass
/// (a minute later, then held back longer while it keeps failing, up to an hour). Only the
/// store failing ends the pass.
pub async fn resolve_domiciles(
    store: &Store,
    client: &InadClient,
    now: Timestamp,
) -> Result<DomicileReport, DomicileError> {
    let cfg = client.config();
    // Codes held back after failures are passed over, so a few more are read than asked.
    let codes: Vec<String> = store
        .domiciles()
        .fiscal_codes_to_check(now, i64::from(cfg.per_pass) * 4)
        .await?
        .into_iter()
        .filter(|cf| client.due(cf, now))
        .take(cfg.per_pass as usize)
        .collect();
    let valid_until = now.plus(i64::from(cfg.cache_days) * 86_400);
    let mut report = DomicileReport::default();
    let mut answers = futures_util::stream::iter(codes)
        .map(|cf| async move {
            let r = client.lookup(&cf, now).await;
            (cf, r)
        })
        .buffer_unordered(cfg.concurrency.max(1) as usize);
    while let Some((cf, answer)) = answers.next().await {
        match answer {
            Ok(pec) => {
                client.answered(&cf);
                store
                    .domiciles()
                    .record(&cf, pec.as_deref(), SOURCE, now, valid_until)
                    .await?;
                if pec.is_some() {
                    report.found += 1;
                } else {
                    report.none += 1;
                }
            }
            Err(e) => {
                client.failed(&cf, now);
                tracing::warn!(cf = %mask(&cf), error = %e, "digital domicile look-up failed; asked again later");
                report.failed += 1;
            }
        }
    }
    Ok(report)
}

/// [`resolve_domiciles`], counted in `metrics` and logged.
pub async fn resolve_and_count(
    store: &Store,
    client: &InadClient,
    metrics: &Arc<Metrics>,
    now: Timestamp,
) -> Result<DomicileReport, DomicileError> {
    let report = resolve_domiciles(store, client, now).await?;
    metrics.count_domicile_lookups("found", report.found);
    metrics.count_domicile_lookups("none", report.none);
    metrics.count_domicile_lookups("failed", report.failed);
    if report != DomicileReport::default() {
        tracing::info!(
            found = report.found,
            none = report.none,
            failed = report.failed,
            "digital domiciles looked up"
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_address_still_valid_and_sendable_is_the_domicile() {
        let now = Timestamp(1_800_000_000); // 2027-01-15
        let body = serde_json::json!({
            "codiceFiscale": "RSSMRA85T10A562S",
            "since": "2017-07-21T17:32:28Z",
            "digitalAddress": [
                {"digitalAddress": "old@pec.example.it",
                 "usageInfo": {"motivation": "CESSAZIONE_VOLONTARIA", "dateEndValidity": "2020-01-01T00:00:00Z"}},
                {"digitalAddress": "not an address"},
                {"digitalAddress": "unreadable@pec.example.it",
                 "usageInfo": {"motivation": "CESSAZIONE_UFFICIO", "dateEndValidity": "soon"}},
                {"digitalAddress": "leaving@pec.example.it",
                 "usageInfo": {"motivation": "CESSAZIONE_UFFICIO", "dateEndValidity": "2030-01-01T00:00:00Z"}},
                {"digitalAddress": "later@pec.example.it"}
            ]
        })
        .to_string();
        assert_eq!(
            domicile_in(body.as_bytes(), now).ok().flatten().as_deref(),
            Some("leaving@pec.example.it")
        );
        let ceased = r#"{"digitalAddress": [{"digitalAddress": "old@pec.example.it",
            "usageInfo": {"dateEndValidity": "2020-01-01T00:00:00Z"}}]}"#;
        assert_eq!(domicile_in(ceased.as_bytes(), now).ok(), Some(None));
        assert!(matches!(
            domicile_in(b"<html>", now),
            Err(InadError::Answer(_))
        ));
    }
}
