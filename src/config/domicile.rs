//! The `[domicile]` section: where legally relevant notices go (CAD art. 3-bis) — the PEC the
//! office holds for a citizen, and the digital domicile looked up in INAD through PDND
//! (`[domicile.inad]`). Without `[domicile.inad]` nothing is looked up.

use serde::Deserialize;

use super::Problems;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDomicile {
    office_record: Option<bool>,
    inad: Option<RawInad>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInad {
    base_url: Option<String>,
    practical_reference: Option<String>,
    cache_days: Option<i64>,
    timeout_s: Option<i64>,
    per_pass: Option<i64>,
    concurrency: Option<i64>,
    token_url: Option<String>,
    audience: Option<String>,
    client_id: Option<String>,
    kid: Option<String>,
    purpose_id: Option<String>,
    private_key: Option<String>,
}

/// PDND's token endpoint, where a signed client assertion buys a voucher.
pub const PDND_TOKEN_URL: &str = "https://auth.interop.pagopa.it/token.oauth2";
/// The audience PDND expects in a client assertion.
pub const PDND_AUDIENCE: &str = "auth.interop.pagopa.it/client-assertion";

/// The office's client on PDND Interoperabilità: what signs the client assertion.
#[derive(Clone, PartialEq, Eq)]
pub struct Pdnd {
    pub token_url: String,
    pub audience: String,
    pub client_id: String,
    /// The id of the public key registered on PDND (the assertion's `kid`).
    pub kid: String,
    /// The purpose (finalità) the INAD e-service is used for.
    pub purpose_id: String,
    /// The PEM text of the client's RSA private key (PKCS#8 or PKCS#1), by
    /// `MESSO_DOMICILE__INAD__PRIVATE_KEY_FILE`.
    pub private_key: String,
}

impl std::fmt::Debug for Pdnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Pdnd")
            .field("token_url", &self.token_url)
            .field("audience", &self.audience)
            .field("client_id", &self.client_id)
            .field("kid", &self.kid)
            .field("purpose_id", &self.purpose_id)
            .finish_non_exhaustive()
    }
}

/// `[domicile.inad]`: the look-up of citizens' digital domiciles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inad {
    /// The e-service's root: `GET {base_url}/extract/{codice fiscale}`.
    pub base_url: String,
    /// Why the office asks (`practicalReference`, e.g. the procedure's reference).
    pub practical_reference: String,
    /// How long an answer (a domicile, or none) is used before INAD is asked again.
    pub cache_days: u32,
    /// Seconds for each request (token and look-up), connection included.
    pub timeout_s: u32,
    /// Codes looked up per pass at most.
    pub per_pass: u32,
    /// Look-ups in flight at once at most.
    pub concurrency: u32,
    pub pdnd: Pdnd,
}

/// The `[domicile]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domicile {
    /// The PEC address the office holds for a citizen counts as the digital domicile.
    pub office_record: bool,
    /// The INAD look-up, when configured.
    pub inad: Option<Inad>,
}

impl Default for Domicile {
    fn default() -> Domicile {
        domicile(&mut Problems(Vec::new()), RawDomicile::default())
    }
}

fn url(p: &mut Problems, key: &str, v: Option<String>, default: Option<&str>) -> String {
    let v = v
        .filter(|s| !s.trim().is_empty())
        .or_else(|| default.map(str::to_owned));
    let Some(v) = v else {
        p.add(key, "is required when [domicile.inad] is present");
        return String::new();
    };
    let v = v.trim().trim_end_matches('/').to_owned();
    if !(v.starts_with("https://") || v.starts_with("http://")) {
        p.add(key, "expected an http:// or https:// URL");
    }
    v
}

fn inad(p: &mut Problems, raw: RawInad) -> Inad {
    let k = |s: &str| format!("domicile.inad.{s}");
    let mut required = |key: &str, v: Option<String>| match v.filter(|s| !s.trim().is_empty()) {
        Some(s) => s.trim().to_owned(),
        None => {
            p.add(k(key), "is required when [domicile.inad] is present");
            String::new()
        }
    };
    let practical_reference = required("practical_reference", raw.practical_reference);
    let client_id = required("client_id", raw.client_id);
    let kid = required("kid", raw.kid);
    let purpose_id = required("purpose_id", raw.purpose_id);
    let private_key = match raw.private_key.filter(|s| !s.trim().is_empty()) {
        Some(key) if key.contains("-----BEGIN ") => key,
        Some(_) => {
            p.add(
                k("private_key"),
                "is not a PEM key (no -----BEGIN line; the value is not shown)",
            );
            String::new()
        }
        None => {
            p.add(
                k("private_key"),
                "is required (put the PEM file's path in MESSO_DOMICILE__INAD__PRIVATE_KEY_FILE)",
            );
            String::new()
        }
    };
    if practical_reference.chars().any(char::is_control) {
        p.add(k("practical_reference"), "must be one line of text");
    }
    let audience = raw
        .audience
        .filter(|s| !s.trim().is_empty())
        .map_or_else(|| PDND_AUDIENCE.to_owned(), |s| s.trim().to_owned());
    Inad {
        base_url: url(p, &k("base_url"), raw.base_url, None),
        practical_reference,
        cache_days: p.ranged(&k("cache_days"), raw.cache_days, 30, 1, 365) as u32,
        timeout_s: p.ranged(&k("timeout_s"), raw.timeout_s, 5, 1, 60) as u32,
        per_pass: p.ranged(&k("per_pass"), raw.per_pass, 50, 1, 1000) as u32,
        concurrency: p.ranged(&k("concurrency"), raw.concurrency, 4, 1, 16) as u32,
        pdnd: Pdnd {
            token_url: url(p, &k("token_url"), raw.token_url, Some(PDND_TOKEN_URL)),
            audience,
            client_id,
            kid,
            purpose_id,
            private_key,
        },
    }
}

pub(super) fn domicile(p: &mut Problems, raw: RawDomicile) -> Domicile {
    Domicile {
        office_record: raw.office_record.unwrap_or(true),
        inad: raw.inad.map(|i| inad(p, i)),
    }
}
