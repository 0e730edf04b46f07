//! Verifying that a webhook comes from whom it claims: the first step, before anything reads the
//! payload beyond what the check itself needs. Every comparison is in constant time.
//!
//! - Twilio: `X-Twilio-Signature` = Base64(HMAC-SHA1(auth token, public URL + every posted
//!   parameter name and value, sorted by name)). Computed over the raw pairs as posted, never a
//!   typed struct, because Twilio adds parameters without notice.
//! - The Italian REST platforms do not sign callbacks: a secret token per endpoint travels in
//!   the callback URL's path.
//! - The generic provider: `X-Messo-Timestamp` (Unix seconds) and `X-Messo-Signature:
//!   v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`, refused outside a tolerance window
//!   so a captured request cannot be replayed later.
//! - Vonage (Voice API): `Authorization: Bearer <JWT>`, HS256 with the account's signature
//!   secret, whose claims carry `iat` (refused outside the same tolerance window) and
//!   `payload_hash` (the hex SHA-256 of the body, compared with the body received). See
//!   [`vonage`].
//!
//! Signatures are checked by the MAC itself (`Mac::verify_slice`, constant time); secrets that
//! are compared as text go through [`ct_eq`] (`subtle`).

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why a request was refused before it was read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No credentials at all (401).
    #[error("missing {0}")]
    Missing(&'static str),
    /// Credentials that do not verify (403).
    #[error("{0}")]
    Invalid(String),
}

impl Refusal {
    /// 401 for missing credentials, 403 for wrong ones.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Missing(_) => 401,
            Refusal::Invalid(_) => 403,
        }
    }
}

/// Equality that takes the same time wherever the inputs differ, their lengths included: both
/// are hashed first, and the digests compared with `subtle`.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    Sha256::digest(a)
        .as_slice()
        .ct_eq(Sha256::digest(b).as_slice())
        .into()
}

/// The form pairs of a body, decoded, in the order posted.
pub fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Twilio's MAC over a request to `url` carrying `pairs`, not yet finalized.
fn twilio_mac(url: &str, pairs: &[(String, String)], auth_token: &str) -> Hmac<Sha1> {
    let mut sorted: Vec<&(String, String)> = pairs.iter().collect();
    sorted.sort();
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(auth_token.as_bytes())
        .unwrap_or_else(|_| unreachable_hmac());
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    mac
}

/// Twilio's signature of a request to `url` carrying `pairs`.
pub fn twilio_signature(url: &str, pairs: &[(String, String)], auth_token: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(twilio_mac(url, pairs, auth_token).finalize().into_bytes())
}

// HMAC takes keys of any length; this is never reached.
fn unreachable_hmac() -> Hmac<Sha1> {
    <Hmac<Sha1> as KeyInit>::new_from_slice(&[0]).unwrap_or_else(|_| unreachable!())
}

/// Checks `X-Twilio-Signature` against the public URL and the posted pairs.
pub fn twilio(
    url: &str,
    pairs: &[(String, String)],
    auth_token: &str,
    header: Option<&str>,
) -> Result<(), Refusal> {
    let given = header
        .filter(|h| !h.is_empty())
        .ok_or(Refusal::Missing("X-Twilio-Signature header"))?;
    let given = base64::engine::general_purpose::STANDARD
        .decode(given.trim())
        .unwrap_or_default();
    if twilio_mac(url, pairs, auth_token)
        .verify_slice(&given)
        .is_ok()
    {
        Ok(())
    } else {
        Err(Refusal::Invalid(
            "X-Twilio-Signature does not match this URL and body".to_owned(),
        ))
    }
}

/// Checks the secret token of an endpoint that providers cannot sign.
pub fn token(given: Option<&str>, expected: &str) -> Result<(), Refusal> {
    let given = given
        .filter(|g| !g.is_empty())
        .ok_or(Refusal::Missing("endpoint token in the URL"))?;
    if ct_eq(given.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(Refusal::Invalid("wrong endpoint token".to_owned()))
    }
}

/// The generic scheme's MAC of `body` sent at `timestamp`, not yet finalized.
fn generic_mac(secret: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable_hmac256());
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The generic signature of `body` sent at `timestamp`: lowercase hex.
pub fn generic_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    hex::encode(generic_mac(secret, timestamp, body).finalize().into_bytes())
}

fn unreachable_hmac256() -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(&[0]).unwrap_or_else(|_| unreachable!())
}

/// Checks the generic scheme: the timestamp within `tolerance_s` of `now` (either way), and a
/// `v1=` signature made with one of `secrets` (the current one, and the previous while it is
/// being rotated).
pub fn generic(
    secrets: &[&str],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
    tolerance_s: i64,
) -> Result<(), Refusal> {
    let ts_text = timestamp
        .filter(|t| !t.is_empty())
        .ok_or(Refusal::Missing("X-Messo-Timestamp header"))?;
    let sig = signature
        .filter(|s| !s.is_empty())
        .ok_or(Refusal::Missing("X-Messo-Signature header"))?;
    let ts: i64 = ts_text
        .trim()
        .parse()
        .map_err(|_| Refusal::Invalid("X-Messo-Timestamp is not a number of seconds".to_owned()))?;
    if (now - ts).abs() > tolerance_s {
        return Err(Refusal::Invalid(format!(
            "X-Messo-Timestamp is {}s away from now; at most {tolerance_s}s are allowed",
            (now - ts).abs()
        )));
    }
    // Several signatures may be sent, comma-separated, during a rotation on the sender's side.
    // One that is not hex cannot match; it is kept (empty) so it is still counted as offered.
    let offered: Vec<Vec<u8>> = sig
        .split(',')
        .filter_map(|p| p.trim().strip_prefix("v1="))
        .map(|h| hex::decode(h).unwrap_or_default())
        .collect();
    if offered.is_empty() {
        return Err(Refusal::Invalid(
            "X-Messo-Signature holds no v1= signature".to_owned(),
        ));
    }
    let mut ok = false;
    for secret in secrets {
        let mac = generic_mac(secret, ts_text.trim(), body);
        for o in &offered {
            // Evaluate every pair: no early exit that would tell which one matched.
            ok |= mac.clone().verify_slice(o).is_ok();
        }
    }
    if ok {
        Ok(())
    } else {
        Err(Refusal::Invalid(
            "X-Messo-Signature does not match the body".to_owned(),
        ))
    }
}

/// Checks a Vonage signed callback: `authorization` is the `Authorization` header, which must
/// hold `Bearer <JWT>`; the JWT's header names `HS256`, its signature is made with one of
/// `secrets` (the current signature secret and, while rotating, the previous one), its `iat`
/// is within `tolerance_s` of `now` (and its `exp`, when present, not past), and its
/// `payload_hash` is the SHA-256 of `body` in hex.
///
/// The JWT's `jti` is not remembered: see `docs/security.md` (what a replay within the window
/// can and cannot do).
pub fn vonage(
    secrets: &[&str],
    authorization: Option<&str>,
    body: &[u8],
    now: i64,
    tolerance_s: i64,
) -> Result<(), Refusal> {
    let auth = authorization
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .ok_or(Refusal::Missing(
            "Authorization header (Vonage's signed JWT)",
        ))?;
    let token = auth
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .ok_or_else(|| {
            Refusal::Invalid("the Authorization header is not \"Bearer <JWT>\"".to_owned())
        })?;
    let not_jwt = || Refusal::Invalid("the bearer token is not a JWT".to_owned());
    let mut parts = token.split('.');
    let (Some(head), Some(claims), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(not_jwt());
    };
    let b64 = |p: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p.trim_end_matches('='))
            .map_err(|_| not_jwt())
    };
    let json = |p: &str| -> Result<serde_json::Value, Refusal> {
        serde_json::from_slice(&b64(p)?).map_err(|_| not_jwt())
    };
    if json(head)?.get("alg").and_then(serde_json::Value::as_str) != Some("HS256") {
        return Err(Refusal::Invalid(
            "the JWT is not signed with HS256".to_owned(),
        ));
    }
    let given = b64(sig)?;
    let mut ok = false;
    for secret in secrets {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
            .unwrap_or_else(|_| unreachable_hmac256());
        mac.update(head.as_bytes());
        mac.update(b".");
        mac.update(claims.as_bytes());
        // Every secret is tried: no early exit that would tell which one matched.
        ok |= mac.verify_slice(&given).is_ok();
    }
    if !ok {
        return Err(Refusal::Invalid(
            "the JWT's signature does not verify with the signature secret".to_owned(),
        ));
    }
    let claims = json(claims)?;
    let number = |k: &str| {
        claims
            .get(k)
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
    };
    let iat = number("iat").ok_or_else(|| Refusal::Invalid("the JWT carries no iat".to_owned()))?;
    if (now - iat).abs() > tolerance_s {
        return Err(Refusal::Invalid(format!(
            "the JWT was issued {}s away from now; at most {tolerance_s}s are allowed",
            (now - iat).abs()
        )));
    }
    if let Some(exp) = number("exp")
        && now > exp
    {
        return Err(Refusal::Invalid("the JWT has expired".to_owned()));
    }
    let hash = claims
        .get("payload_hash")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| Refusal::Invalid("the JWT carries no payload_hash".to_owned()))?;
    // Vonage hashes the JSON it sends without whitespace between its tokens: the body as
    // received, or (should a proxy or Vonage itself space it out) the same body with that
    // whitespace taken away — the same JSON, so nothing the hash covers can differ.
    let given = hash.trim().to_ascii_lowercase();
    let raw = ct_eq(
        given.as_bytes(),
        hex::encode(Sha256::digest(body)).as_bytes(),
    );
    let compact = ct_eq(
        given.as_bytes(),
        hex::encode(Sha256::digest(json_without_whitespace(body))).as_bytes(),
    );
    if raw | compact {
        Ok(())
    } else {
        Err(Refusal::Invalid(
            "the JWT's payload_hash does not match the body".to_owned(),
        ))
    }
}

/// `body` (JSON) with the whitespace between its tokens removed; strings are kept as they are.
fn json_without_whitespace(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in body {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
            in_string = b == b'"';
            out.push(b);
        }
    }
    out
}

/// A JWT as Vonage signs a callback carrying `body` at `iat` with `secret` (tests and
/// `messo` tools that replay a callback): claims `iat`, `jti`, `iss`, `payload_hash`,
/// `api_key`.
pub fn vonage_token(secret: &str, body: &[u8], iat: i64) -> String {
    let e = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let payload_hash = hex::encode(Sha256::digest(body));
    let head = e(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = e(serde_json::json!({
        "iat": iat,
        "jti": format!("{iat}-{}", &payload_hash[..16]),
        "iss": "Vonage",
        "payload_hash": payload_hash,
        "api_key": "abcd1234",
    })
    .to_string()
    .as_bytes());
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable_hmac256());
    mac.update(head.as_bytes());
    mac.update(b".");
    mac.update(claims.as_bytes());
    format!("{head}.{claims}.{}", e(&mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    // The worked example of Twilio's security documentation
    // (twilio.com/docs/usage/security, "Validating requests"): auth token 12345.
    #[test]
    fn twilio_documented_example() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let p = pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        assert_eq!(
            twilio_signature(url, &p, "12345"),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
        assert!(twilio(url, &p, "12345", Some("0/KCTR6DLpKmkAf8muzZqo1nDgQ=")).is_ok());
        // The same pairs posted in another order sign the same.
        let body = b"To=%2B18005551212&Digits=1234&CallSid=CA1234567890ABCDE&From=%2B12349013030&Caller=%2B12349013030";
        assert!(
            twilio(
                url,
                &form_pairs(body),
                "12345",
                Some("0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
            )
            .is_ok()
        );
    }

    #[test]
    fn twilio_refuses_any_change() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let p = pairs(&[("Body", "STOP"), ("From", "+393471234567")]);
        let sig = twilio_signature(url, &p, "tok");
        assert!(twilio(url, &p, "tok", Some(&sig)).is_ok());
        let tampered = pairs(&[("Body", "START"), ("From", "+393471234567")]);
        assert!(matches!(
            twilio(url, &tampered, "tok", Some(&sig)),
            Err(Refusal::Invalid(_))
        ));
        let added = pairs(&[("Body", "STOP"), ("From", "+393471234567"), ("X", "1")]);
        assert!(twilio(url, &added, "tok", Some(&sig)).is_err());
        assert!(
            twilio(
                "http://mycompany.com/myapp.php?foo=1&bar=2",
                &p,
                "tok",
                Some(&sig)
            )
            .is_err()
        );
        assert!(twilio(url, &p, "other", Some(&sig)).is_err());
        assert_eq!(
            twilio(url, &p, "tok", None).map_err(|e| e.status()),
            Err(401)
        );
        assert_eq!(
            twilio(url, &p, "tok", Some("x")).map_err(|e| e.status()),
            Err(403)
        );
    }

    #[test]
    fn tokens() {
        assert!(token(Some("s3cret-token"), "s3cret-token").is_ok());
        assert_eq!(
            token(Some("s3cret-tokem"), "s3cret-token").map_err(|e| e.status()),
            Err(403)
        );
        assert_eq!(
            token(Some("s3cret"), "s3cret-token").map_err(|e| e.status()),
            Err(403)
        );
        assert_eq!(
            token(None, "s3cret-token").map_err(|e| e.status()),
            Err(401)
        );
        assert!(!ct_eq(b"", b"x"));
        assert!(ct_eq(b"", b""));
    }

    // Our own vector, computed independently with Python's hmac module:
    // hmac.new(b"whsec_test", b"1767225600.{\"id\":\"m1\"}", hashlib.sha256).hexdigest()
    #[test]
    fn generic_vector_and_window() {
        let body = br#"{"id":"m1"}"#;
        let sig = generic_signature("whsec_test", "1767225600", body);
        assert_eq!(sig, GENERIC_VECTOR);
        let header = format!("v1={sig}");
        let now = 1_767_225_600;
        let ts = Some("1767225600");
        // With the one secret and a window of 300 s.
        let check = |ts: Option<&str>, signature: Option<&str>, body: &[u8], now: i64| {
            generic(&["whsec_test"], ts, signature, body, now, 300)
        };
        assert!(check(ts, Some(&header), body, now + 299).is_ok());
        assert!(generic(&["old", "whsec_test"], ts, Some(&header), body, now, 300).is_ok());
        let stale = check(ts, Some(&header), body, now + 301);
        assert!(matches!(stale, Err(Refusal::Invalid(m)) if m.contains("301s")));
        assert!(check(ts, Some(&header), b"{\"id\":\"m2\"}", now).is_err());
        assert!(check(Some("1767225601"), Some(&header), body, now).is_err());
        assert!(check(ts, Some(&sig), body, now).is_err());
        assert_eq!(
            check(None, Some(&header), body, now).map_err(|e| e.status()),
            Err(401)
        );
        assert_eq!(
            check(Some("x"), Some(&header), body, now).map_err(|e| e.status()),
            Err(403)
        );
        let two = format!("v1=deadbeef, v1={sig}");
        assert!(check(ts, Some(&two), body, now).is_ok());
    }

    // VONAGE_VECTOR was made independently with Python (hmac, hashlib, base64.urlsafe_b64encode
    // without padding) over the same claims, with the secret "vonage-signature-secret".
    #[test]
    fn vonage_signed_callbacks() {
        let body = br#"{"conversation_uuid":"CON-1","dtmf":{"digits":"1","timed_out":false}}"#;
        let now = 1_796_000_000;
        let secret = "vonage-signature-secret";
        let token = vonage_token(secret, body, now);
        let bearer = format!("Bearer {token}");
        let check =
            |auth: Option<&str>, body: &[u8], now: i64| vonage(&[secret], auth, body, now, 300);
        assert_eq!(check(Some(&bearer), body, now), Ok(()));
        assert_eq!(check(Some(&bearer), body, now + 300), Ok(()));
        assert!(vonage(&["old", secret], Some(&bearer), body, now, 300).is_ok());
        // Missing: 401; everything else wrong: 403, with its reason.
        let status = |r: Result<(), Refusal>| r.map_err(|e| (e.status(), e.to_string()));
        assert!(matches!(status(check(None, body, now)), Err((401, _))));
        assert!(matches!(status(check(Some(" "), body, now)), Err((401, _))));
        let stale = status(check(Some(&bearer), body, now + 301));
        assert!(
            matches!(&stale, Err((403, m)) if m.contains("301s")),
            "{stale:?}"
        );
        let tampered = status(check(
            Some(&bearer),
            br#"{"conversation_uuid":"CON-2"}"#,
            now,
        ));
        assert!(
            matches!(&tampered, Err((403, m)) if m.contains("payload_hash")),
            "{tampered:?}"
        );
        let other = status(vonage(&["another"], Some(&bearer), body, now, 300));
        assert!(
            matches!(&other, Err((403, m)) if m.contains("signature")),
            "{other:?}"
        );
        assert!(check(Some(&token), body, now).is_err(), "no Bearer scheme");
        assert!(check(Some("Bearer a.b"), body, now).is_err());
        // alg "none" with the signature stripped is not taken.
        let (_, rest) = token.split_once('.').expect("jwt");
        let (claims, _) = rest.split_once('.').expect("jwt");
        let none = format!(
            "Bearer {}.{claims}.",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#)
        );
        assert!(
            matches!(status(check(Some(&none), body, now)), Err((403, m)) if m.contains("HS256"))
        );
        // A claim changed after signing does not verify.
        let forged_claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            serde_json::json!({"iat": now, "payload_hash": hex::encode(Sha256::digest(b"{}"))})
                .to_string(),
        );
        let (head, _) = token.split_once('.').expect("jwt");
        let sig = token.rsplit_once('.').expect("jwt").1;
        let forged = format!("Bearer {head}.{forged_claims}.{sig}");
        assert!(check(Some(&forged), b"{}", now).is_err());
        // Vonage hashes the JSON without whitespace: the same body spaced out verifies, a
        // string changed inside does not.
        let spaced = br#"{ "conversation_uuid": "CON-1",
            "dtmf": { "digits": "1", "timed_out": false } }"#;
        assert_eq!(check(Some(&bearer), spaced, now), Ok(()));
        let inside = br#"{"conversation_uuid":"CON- 1","dtmf":{"digits":"1","timed_out":false}}"#;
        assert!(check(Some(&bearer), inside, now).is_err());
        assert_eq!(
            json_without_whitespace(br#"{ "a" : "x \" y" ,"b":[1, 2] }"#),
            br#"{"a":"x \" y","b":[1,2]}"#.to_vec()
        );
        // The token made independently verifies too.
        assert_eq!(
            check(Some(&format!("Bearer {VONAGE_VECTOR}")), body, now),
            Ok(())
        );
    }

    const VONAGE_VECTOR: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJhcGlfa2V5IjoiYWJjZDEyMzQiLCJpYXQiOjE3OTYwMDAwMDAsImlzcyI6IlZvbmFnZSIsImp0aSI6IjE3OTYwMDAwMDAtZDhmMGFkMmUzZGJiOGYyNiIsInBheWxvYWRfaGFzaCI6ImQ4ZjBhZDJlM2RiYjhmMjY4MzcxMWI3MTE2NTA2NDMwN2I3MTI0ZDRkMjU3MTNhNTZiZDkwYzIzZjM3OGU2YzkifQ.mfq-cyPluIHkZDjj-KmeNNuAByA6mMiqQBHkGvIyBWw";

    const GENERIC_VECTOR: &str = "b40d97a30f6669ece89bb3248c4a6aa5a1bdfb7171efcba298339871ab3d68f3";
}
