//! A stand-in for PDND's token endpoint and INAD's extract e-service, on real HTTP on loopback.
//!
//! The token endpoint checks a client assertion the way PDND does: the form's fields, the
//! RS256 signature with the public half of the office's key (tests/data/pdnd-test-key.pem),
//! the header's keys and the claim set exactly (an extra claim such as `nbf` is refused), the
//! audience, the purpose, a `jti` never seen before. The extract endpoint checks the voucher
//! and the `practicalReference`, and answers by codice fiscale: a domicile, a ceased one, none
//! (404), a 500, a 503, an answer slower than any client's patience. Every call is counted.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{KeyPair, RSA_PKCS1_2048_8192_SHA256, RsaKeyPair, UnparsedPublicKey};
use serde_json::{Value, json};

/// The office's key, registered on the stub's PDND.
pub const KEY: &str = include_str!("../data/pdnd-test-key.pem");
/// Another RSA key: PDND does not know it.
pub const OTHER_KEY: &str = include_str!("../data/pdnd-other-key.pem");

pub const CLIENT_ID: &str = "9b361d49-33f4-4f1e-a88b-4e12661f2309";
pub const KID: &str = "ZmYxZGE1OTYtMjNkOC00MzM5LWJiNmEtNTM3OWNjNmNkNTQz";
pub const PURPOSE_ID: &str = "1b361d49-33f4-4f1e-a88b-4e12661f2300";
pub const AUDIENCE: &str = "auth.interop.pagopa.it/client-assertion";
pub const REFERENCE: &str = "URP-avvisi";

/// A citizen with a domicile in INAD.
pub const CF_DOMICILE: &str = "RSSMRA85T10A562S";
pub const DOMICILE: &str = "mario.rossi@pec.example.it";
/// A citizen whose domicile ceased (`dateEndValidity` in the past).
pub const CF_CEASED: &str = "BNCLRA90A41H501F";
/// Codes INAD answers with a 500, a 503, or too late.
pub const CF_500: &str = "VRDGPP80B02F205B";
pub const CF_503: &str = "NREPLA75C03L219H";
pub const CF_HANG: &str = "GLLFNC70D04G273L";
/// A code INAD does not know (404).
pub const CF_NONE: &str = "BLUMRC88E05D612S";

/// What the stub saw and how it behaves; shared with the test.
#[derive(Default)]
pub struct Peer {
    /// Token requests, and those granted.
    pub token_calls: AtomicU32,
    pub tokens_granted: AtomicU32,
    /// Why each refused token request was refused.
    pub refusals: Mutex<Vec<String>>,
    /// Look-ups by codice fiscale.
    pub lookups: Mutex<HashMap<String, u32>>,
    /// Look-ups refused with a 401.
    pub unauthorized: AtomicU32,
    /// The next look-up finds the voucher expired (a 401), once.
    pub expire_next: AtomicBool,
    /// `expires_in` of the vouchers granted.
    pub expires_in: AtomicI64,
    /// The 500 and 503 codes answer well from now on.
    pub healed: AtomicBool,
    vouchers: Mutex<HashSet<String>>,
    jtis: Mutex<HashSet<String>>,
    seq: AtomicU32,
}

impl Peer {
    pub fn lookups_of(&self, cf: &str) -> u32 {
        self.lookups
            .lock()
            .expect("lock")
            .get(cf)
            .copied()
            .unwrap_or(0)
    }
}

/// Serves the stub; its base URL and state. Tokens at `{base}/token.oauth2`, INAD at
/// `{base}/inad`.
pub async fn start() -> (String, Arc<Peer>) {
    let peer = Arc::new(Peer {
        expires_in: AtomicI64::new(600),
        ..Peer::default()
    });
    let app = Router::new()
        .route("/token.oauth2", post(token))
        .route("/inad/extract/{cf}", get(extract))
        .with_state(Arc::clone(&peer));
    (super::serve(app).await, peer)
}

fn pem_der(pem: &str) -> Vec<u8> {
    let b64: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    STANDARD.decode(b64).expect("PEM")
}

/// The registered public key, as ring verifies with it.
fn public_key() -> Vec<u8> {
    let pair = RsaKeyPair::from_pkcs8(&pem_der(KEY)).expect("the test key");
    pair.public_key().as_ref().to_vec()
}

fn json_part(part: &str) -> Result<Value, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| format!("not base64url: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}"))
}

fn keys_of(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

/// Checks a client assertion as PDND does; the reason when refused.
fn check_assertion(peer: &Peer, form: &HashMap<String, String>) -> Result<(), String> {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if field("grant_type") != "client_credentials" {
        return Err("grant_type".into());
    }
    if field("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
        return Err("client_assertion_type".into());
    }
    if field("client_id") != CLIENT_ID {
        return Err("client_id".into());
    }
    let jwt = field("client_assertion");
    let parts: Vec<&str> = jwt.split('.').collect();
    let [h, c, s] = parts[..] else {
        return Err("not a compact JWT".into());
    };
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| "signature not base64url".to_owned())?;
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public_key())
        .verify(format!("{h}.{c}").as_bytes(), &signature)
        .map_err(|_| "bad signature".to_owned())?;
    let header = json_part(h)?;
    if keys_of(&header) != ["alg", "kid", "typ"] {
        return Err(format!("header keys {:?}", keys_of(&header)));
    }
    if header["alg"] != "RS256" || header["typ"] != "JWT" || header["kid"] != KID {
        return Err(format!("header {header}"));
    }
    let claims = json_part(c)?;
    let expected = ["aud", "exp", "iat", "iss", "jti", "purposeId", "sub"];
    if keys_of(&claims) != expected {
        return Err(format!("claims {:?}", keys_of(&claims)));
    }
    if claims["iss"] != CLIENT_ID || claims["sub"] != CLIENT_ID {
        return Err("iss/sub".into());
    }
    if claims["aud"] != AUDIENCE {
        return Err("aud".into());
    }
    if claims["purposeId"] != PURPOSE_ID {
        return Err("purposeId".into());
    }
    let (Some(iat), Some(exp)) = (claims["iat"].as_i64(), claims["exp"].as_i64()) else {
        return Err("iat/exp not numbers".into());
    };
    let now = chrono::Utc::now().timestamp();
    if iat > now + 60 || exp <= now || exp <= iat || exp - iat > 600 {
        return Err(format!("iat {iat} exp {exp} now {now}"));
    }
    let jti = claims["jti"].as_str().unwrap_or("").to_owned();
    if jti.len() < 16 || !peer.jtis.lock().expect("lock").insert(jti) {
        return Err("jti missing or used before".into());
    }
    Ok(())
}

async fn token(State(peer): State<Arc<Peer>>, body: String) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    peer.token_calls.fetch_add(1, Ordering::SeqCst);
    if let Err(why) = check_assertion(&peer, &form) {
        peer.refusals.lock().expect("lock").push(why);
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(
                json!({"error": "invalid_client", "error_description": "client assertion refused"}),
            ),
        )
            .into_response();
    }
    let n = peer.seq.fetch_add(1, Ordering::SeqCst);
    let voucher = format!("voucher-{n}");
    peer.vouchers.lock().expect("lock").insert(voucher.clone());
    peer.tokens_granted.fetch_add(1, Ordering::SeqCst);
    axum::Json(json!({
        "access_token": voucher,
        "token_type": "Bearer",
        "expires_in": peer.expires_in.load(Ordering::SeqCst),
    }))
    .into_response()
}

fn problem(status: StatusCode, kind: &str, detail: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json!({"status": status.as_u16(), "type": kind, "detail": detail}).to_string(),
    )
        .into_response()
}

async fn extract(
    State(peer): State<Arc<Peer>>,
    Path(cf): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    *peer
        .lookups
        .lock()
        .expect("lock")
        .entry(cf.clone())
        .or_default() += 1;
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned();
    if peer.expire_next.swap(false, Ordering::SeqCst) {
        // Every voucher granted so far has expired.
        peer.vouchers.lock().expect("lock").clear();
    }
    if !peer.vouchers.lock().expect("lock").contains(&bearer) {
        peer.unauthorized.fetch_add(1, Ordering::SeqCst);
        return problem(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "voucher not valid",
        );
    }
    if q.get("practicalReference").map(String::as_str) != Some(REFERENCE) {
        return problem(StatusCode::BAD_REQUEST, "BAD_REQUEST", "practicalReference");
    }
    let healed = peer.healed.load(Ordering::SeqCst);
    match cf.as_str() {
        CF_DOMICILE => axum::Json(json!({
            "codiceFiscale": cf,
            "since": "2017-07-21T17:32:28Z",
            "digitalAddress": [
                {"digitalAddress": "vecchio@pec.example.it", "practicedProfession": "",
                 "usageInfo": {"motivation": "CESSAZIONE_VOLONTARIA", "dateEndValidity": "2020-01-01T00:00:00Z"}},
                {"digitalAddress": DOMICILE, "practicedProfession": ""}
            ]
        }))
        .into_response(),
        CF_CEASED => axum::Json(json!({
            "codiceFiscale": cf,
            "since": "2017-07-21T17:32:28Z",
            "digitalAddress": [
                {"digitalAddress": "cessato@pec.example.it", "practicedProfession": "Avvocato",
                 "usageInfo": {"motivation": "CESSAZIONE_UFFICIO", "dateEndValidity": "2021-05-01T00:00:00Z"}}
            ]
        }))
        .into_response(),
        CF_500 if !healed => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_SERVER_ERROR",
            &format!("errore interno per {cf}"),
        ),
        CF_503 if !healed => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "servizio non disponibile",
        ),
        CF_HANG if !healed => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            problem(StatusCode::GATEWAY_TIMEOUT, "TIMEOUT", "too late")
        }
        _ => problem(StatusCode::NOT_FOUND, "NOT_FOUND", "nessun domicilio digitale"),
    }
}
