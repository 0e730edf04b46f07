//! DKIM signing of outgoing mail (RFC 6376), with RSA-SHA256 or Ed25519-SHA256 (RFC 8463).
//!
//! The message is signed as it leaves, after lettre has formatted it: the headers a receiver
//! shows or threads on (those present among [`SIGNED_HEADERS`]) and the whole body, both in
//! `relaxed` canonical form, so that a relay re-folding a header or trimming spaces at the end
//! of a line does not break the signature. The signature header is put first.
//!
//! The keys are `ring`'s (already the TLS provider): an RSA key of 2048 to 4096 bits or an
//! Ed25519 key, in PEM (PKCS#8 `PRIVATE KEY`, or PKCS#1 `RSA PRIVATE KEY`). A key is checked
//! once, where the channels are built and by `messo check-config`, and refused there by its
//! configuration key `smtp.dkim.private_key`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::digest::{SHA256, digest};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};

use crate::config::{Dkim, DkimAlgorithm};

/// The headers signed when the message has them, in this order.
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Auto-Submitted",
    "X-Messo-Ticket",
];

/// The longest line of the signature header, in columns (RFC 5322's recommendation).
const FOLD_AT: usize = 78;

/// Why a DKIM key cannot be used. Each names the configuration key to fix.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("smtp.dkim.private_key: {0}")]
    Key(String),
}

fn key_error(why: impl Into<String>) -> DkimError {
    DkimError::Key(why.into())
}

enum Key {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// Signs messages for one domain and selector. Built once; signing takes `&self`.
pub struct DkimSigner {
    domain: String,
    selector: String,
    key: Key,
    rng: SystemRandom,
}

impl std::fmt::Debug for DkimSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// The one PEM block of `text`: its label and its bytes.
fn pem_block(text: &str) -> Result<(String, Vec<u8>), DkimError> {
    let begin = text
        .find("-----BEGIN ")
        .ok_or_else(|| key_error("expected a PEM private key (-----BEGIN PRIVATE KEY----- …)"))?;
    let rest = &text[begin + "-----BEGIN ".len()..];
    let label_end = rest
        .find("-----")
        .ok_or_else(|| key_error("the PEM header line is cut short"))?;
    let label = rest[..label_end].trim().to_owned();
    let body = &rest[label_end + 5..];
    let end_marker = format!("-----END {label}-----");
    let end = body
        .find(&end_marker)
        .ok_or_else(|| key_error(format!("the PEM block has no {end_marker:?} line")))?;
    let b64: String = body[..end]
        .lines()
        .filter(|l| !l.contains(':')) // RFC 1421 headers of old encrypted keys
        .flat_map(|l| l.chars())
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = B64
        .decode(b64.as_bytes())
        .map_err(|_| key_error(format!("the PEM block {label:?} is not valid base64")))?;
    Ok((label, der))
}

/// What ring's refusal of an RSA key means for whoever configures it.
fn rsa_refusal(e: ring::error::KeyRejected) -> DkimError {
    let how = "generate one with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`";
    match e.to_string().as_str() {
        "TooSmall" => key_error(format!(
            "the RSA key is shorter than 2048 bits; DKIM keys of 2048 to 4096 bits are accepted \
             (shorter ones are refused by receivers and by ring): {how}"
        )),
        "TooLarge" => key_error(format!(
            "the RSA key is longer than 4096 bits; DKIM keys of 2048 to 4096 bits are accepted \
             (ring signs with no larger key): {how}"
        )),
        "WrongAlgorithm" => key_error(
            "the key is not an RSA key; algorithm = \"rsa-sha256\" needs one \
             (or set algorithm = \"ed25519-sha256\" for an Ed25519 key)",
        ),
        "PrivateModulusLenNotMultipleOf512Bits" => key_error(format!(
            "the RSA key's size is not a multiple of 512 bits (ring signs with 2048, 2560, \
             3072, 3584 or 4096-bit keys): {how}"
        )),
        other => key_error(format!("ring refuses the RSA key ({other}): {how}")),
    }
}

impl DkimSigner {
    /// Parses and checks the key of `d`.
    pub fn new(d: &Dkim) -> Result<DkimSigner, DkimError> {
        let (label, der) = pem_block(&d.private_key)?;
        let key = match (d.algorithm, label.as_str()) {
            (_, "ENCRYPTED PRIVATE KEY") => {
                return Err(key_error(
                    "the key is encrypted; give Messo an unencrypted key in a file only its \
                     user can read (`openssl pkey -in KEY -out KEY.plain`)",
                ));
            }
            (DkimAlgorithm::RsaSha256, "PRIVATE KEY") => {
                Key::Rsa(RsaKeyPair::from_pkcs8(&der).map_err(rsa_refusal)?)
            }
            (DkimAlgorithm::RsaSha256, "RSA PRIVATE KEY") => {
                Key::Rsa(RsaKeyPair::from_der(&der).map_err(rsa_refusal)?)
            }
            (DkimAlgorithm::Ed25519Sha256, "PRIVATE KEY") => Key::Ed25519(
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).map_err(|e| {
                    if e.to_string() == "WrongAlgorithm" {
                        key_error(
                            "the key is not an Ed25519 key; algorithm = \"ed25519-sha256\" \
                             needs one (`openssl genpkey -algorithm ed25519`)",
                        )
                    } else {
                        key_error(format!("ring refuses the Ed25519 key ({})", e))
                    }
                })?,
            ),
            (DkimAlgorithm::Ed25519Sha256, "RSA PRIVATE KEY") => {
                return Err(key_error(
                    "the key is an RSA key; algorithm = \"ed25519-sha256\" needs an Ed25519 key \
                     (or set algorithm = \"rsa-sha256\")",
                ));
            }
            (_, other) => {
                return Err(key_error(format!(
                    "a PEM block {other:?} is not a private key; expected PRIVATE KEY \
                     (PKCS#8) or RSA PRIVATE KEY (PKCS#1)"
                )));
            }
        };
        Ok(DkimSigner {
            domain: d.domain.clone(),
            selector: d.selector.clone(),
            key,
            rng: SystemRandom::new(),
        })
    }

    /// Where the public key is published: `<selector>._domainkey.<domain>`.
    pub fn record_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }

    /// The `a=` tag's value.
    pub fn algorithm(&self) -> &'static str {
        match self.key {
            Key::Rsa(_) => "rsa-sha256",
            Key::Ed25519(_) => "ed25519-sha256",
        }
    }

    /// One line for logs and reports: domain, selector, algorithm and key size.
    pub fn describe(&self) -> String {
        let size = match &self.key {
            Key::Rsa(k) => format!("RSA {} bits", k.public().modulus_len() * 8),
            Key::Ed25519(_) => "Ed25519".to_owned(),
        };
        format!(
            "DKIM d={} s={} a={} ({size})",
            self.domain,
            self.selector,
            self.algorithm()
        )
    }

    /// The TXT record to publish at [`DkimSigner::record_name`].
    pub fn public_key_record(&self) -> String {
        match &self.key {
            Key::Rsa(k) => format!(
                "v=DKIM1; k=rsa; p={}",
                B64.encode(rsa_spki(k.public().as_ref()))
            ),
            Key::Ed25519(k) => format!(
                "v=DKIM1; k=ed25519; p={}",
                B64.encode(k.public_key().as_ref())
            ),
        }
    }

    /// `message` (CRLF lines, headers then body) with a `DKIM-Signature` header first, signed
    /// now.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.sign_at(message, now)
    }

    /// [`DkimSigner::sign`] with the signature time `t=` given (seconds since 1970).
    pub fn sign_at(&self, message: &[u8], t: u64) -> Vec<u8> {
        let (headers, body) = split_message(message);
        let body_hash = B64.encode(digest(&SHA256, &relaxed_body(body)).as_ref());
        let fields = header_fields(headers);
        // The last occurrence of each signed name (RFC 6376 §5.4.2 picks from the bottom).
        let mut signed: Vec<(&str, &[u8])> = Vec::new();
        for name in SIGNED_HEADERS {
            if let Some(f) = fields
                .iter()
                .rev()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                signed.push((name, f.1));
            }
        }
        let h = signed
            .iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect::<Vec<_>>();
        let unsigned = signature_header(
            &[
                "v=1".to_owned(),
                format!("a={}", self.algorithm()),
                "c=relaxed/relaxed".to_owned(),
                format!("d={}", self.domain),
                format!("s={}", self.selector),
                format!("t={t}"),
            ],
            &h,
            &format!("bh={body_hash}"),
        );
        let mut data = Vec::new();
        for (_, raw) in &signed {
            data.extend_from_slice(&relaxed_header(raw));
        }
        let mut own = relaxed_header(unsigned.as_bytes());
        // Signed without its final CRLF (RFC 6376 §3.7).
        own.truncate(own.len() - 2);
        data.extend_from_slice(&own);
        let signature = match &self.key {
            Key::Rsa(k) => {
                let mut sig = vec![0u8; k.public().modulus_len()];
                // Fails only on an internal error of ring; a wrong signature would be worse
                // than none, so the message then goes unsigned and it is said.
                match k.sign(&RSA_PKCS1_SHA256, &self.rng, &data, &mut sig) {
                    Ok(()) => sig,
                    Err(_) => {
                        tracing::error!(signer = %self.describe(), "RSA signing failed; the message goes unsigned");
                        return message.to_vec();
                    }
                }
            }
            // RFC 8463 §3: Ed25519 signs the SHA-256 hash of the data.
            Key::Ed25519(k) => k.sign(digest(&SHA256, &data).as_ref()).as_ref().to_vec(),
        };
        let header = fold_b(&unsigned, &B64.encode(signature));
        let mut out = Vec::with_capacity(header.len() + message.len());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(message);
        out
    }
}

/// The TXT record of `d`'s key (`v=DKIM1; k=…; p=…`), checking the key on the way.
pub fn public_key_record(d: &Dkim) -> Result<String, DkimError> {
    Ok(DkimSigner::new(d)?.public_key_record())
}

/// A DER length.
fn der_len(n: usize, out: &mut Vec<u8>) {
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    der_len(content.len(), &mut out);
    out.extend_from_slice(content);
    out
}

/// The SubjectPublicKeyInfo of an RSA public key (`RSAPublicKey`, PKCS#1), as DKIM's `p=`.
fn rsa_spki(rsa_public_key: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL }
    const ALGORITHM: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0u8];
    bits.extend_from_slice(rsa_public_key);
    let mut content = ALGORITHM.to_vec();
    content.extend_from_slice(&der(0x03, &bits));
    der(0x30, &content)
}

/// The header block (without the empty line) and the body.
fn split_message(message: &[u8]) -> (&[u8], &[u8]) {
    if let Some(i) = message.windows(4).position(|w| w == b"\r\n\r\n") {
        (&message[..i + 2], &message[i + 4..])
    } else if let Some(i) = message.windows(2).position(|w| w == b"\n\n") {
        (&message[..i + 1], &message[i + 2..])
    } else {
        (message, &[])
    }
}

/// The header fields of a header block: each one's name and raw text (folds and final CRLF
/// included).
fn header_fields(block: &[u8]) -> Vec<(String, &[u8])> {
    let mut fields: Vec<(String, &[u8])> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < block.len() {
        let end = block[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(block.len(), |p| i + p + 1);
        let continued = matches!(block.get(end), Some(b' ' | b'\t'));
        if !continued {
            let raw = &block[start..end];
            let name = raw
                .iter()
                .position(|&b| b == b':')
                .map(|c| String::from_utf8_lossy(&raw[..c]).trim().to_owned());
            if let Some(name) = name {
                fields.push((name, raw));
            }
            start = end;
        }
        i = end;
    }
    fields
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// The `relaxed` form of one header field (RFC 6376 §3.4.2), ending in CRLF.
pub fn relaxed_header(raw: &[u8]) -> Vec<u8> {
    let colon = raw.iter().position(|&b| b == b':').unwrap_or(raw.len());
    let name = String::from_utf8_lossy(&raw[..colon])
        .trim()
        .to_ascii_lowercase();
    let value = raw.get(colon + 1..).unwrap_or(&[]);
    let mut out = name.into_bytes();
    out.push(b':');
    let mut pending_space = false;
    let mut started = false;
    for &b in value {
        if b == b'\r' || b == b'\n' {
            continue; // unfolding
        }
        if is_wsp(b) {
            pending_space = started;
            continue;
        }
        if pending_space {
            out.push(b' ');
            pending_space = false;
        }
        out.push(b);
        started = true;
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The `relaxed` form of a body (RFC 6376 §3.4.4).
pub fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(p) => (&rest[..p], &rest[p + 1..]),
            None => (rest, &[][..]),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut out = Vec::with_capacity(line.len());
        let mut pending_space = false;
        for &b in line {
            if is_wsp(b) {
                pending_space = true;
                continue;
            }
            if pending_space {
                out.push(b' ');
                pending_space = false;
            }
            out.push(b);
        }
        lines.push(out);
        rest = next;
    }
    while lines.last().is_some_and(Vec::is_empty) {
        lines.pop();
    }
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(&l);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The `DKIM-Signature` header with an empty `b=`, folded at [`FOLD_AT`] columns, ending in
/// `b=` (no CRLF).
fn signature_header(tags: &[String], h: &[String], bh: &str) -> String {
    let mut out = String::from("DKIM-Signature:");
    let mut col = out.len();
    let put = |piece: &str, out: &mut String, col: &mut usize| {
        if *col + 1 + piece.len() > FOLD_AT {
            out.push_str("\r\n\t");
            *col = 1;
        } else {
            out.push(' ');
            *col += 1;
        }
        out.push_str(piece);
        *col += piece.len();
    };
    for t in tags {
        put(&format!("{t};"), &mut out, &mut col);
    }
    // h= may fold after any colon.
    let mut first = true;
    for (i, name) in h.iter().enumerate() {
        let last = i + 1 == h.len();
        let piece = format!(
            "{}{name}{}",
            if first { "h=" } else { "" },
            if last { ";" } else { ":" }
        );
        if first {
            put(&piece, &mut out, &mut col);
            first = false;
        } else if col + piece.len() > FOLD_AT {
            out.push_str("\r\n\t");
            out.push_str(&piece);
            col = 1 + piece.len();
        } else {
            out.push_str(&piece);
            col += piece.len();
        }
    }
    put(&format!("{bh};"), &mut out, &mut col);
    put("b=", &mut out, &mut col);
    out
}

/// `unsigned` (ending in `b=`) with the signature's base64, folded, and the final CRLF.
fn fold_b(unsigned: &str, b64: &str) -> String {
    let mut out = unsigned.to_owned();
    let mut col = unsigned.rsplit('\n').next().map_or(0, str::len);
    let mut rest = b64;
    while !rest.is_empty() {
        let room = FOLD_AT.saturating_sub(col);
        if room == 0 {
            out.push_str("\r\n\t");
            col = 1;
            continue;
        }
        let take = room.min(rest.len());
        out.push_str(&rest[..take]);
        col += take;
        rest = &rest[take..];
    }
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6376 §3.4.5: the example message and its relaxed forms.
    #[test]
    fn relaxed_canonicalisation_matches_rfc_6376_example() {
        let message = b"A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n";
        let (headers, body) = split_message(message);
        let fields = header_fields(headers);
        assert_eq!(fields.len(), 2);
        let canon: Vec<u8> = fields
            .iter()
            .flat_map(|(_, raw)| relaxed_header(raw))
            .collect();
        assert_eq!(canon, b"a:X\r\nb:Y Z\r\n");
        assert_eq!(relaxed_body(body), b" C\r\nD E\r\n");
    }

    #[test]
    fn empty_bodies_and_missing_final_crlf() {
        assert_eq!(relaxed_body(b""), b"");
        assert_eq!(relaxed_body(b"\r\n\r\n"), b"");
        assert_eq!(relaxed_body(b"abc"), b"abc\r\n");
        // The SHA-256 of the empty relaxed body (RFC 8463's example uses it too).
        assert_eq!(
            B64.encode(digest(&SHA256, &relaxed_body(b"\r\n")).as_ref()),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn the_signature_header_is_folded_within_78_columns() {
        let h: Vec<String> = SIGNED_HEADERS
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect();
        let unsigned = signature_header(
            &[
                "v=1".into(),
                "a=rsa-sha256".into(),
                "d=comune.example.it".into(),
            ],
            &h,
            "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        );
        let full = fold_b(&unsigned, &"A".repeat(344));
        for line in full.split("\r\n") {
            assert!(line.len() <= FOLD_AT, "{line:?} is {} long", line.len());
        }
        assert!(full.ends_with("\r\n"));
        // Unfolded, the h= list is whole again (a fold leaves a space after a colon, which
        // the tag's grammar allows).
        let canon = String::from_utf8(relaxed_header(unsigned.as_bytes())).unwrap();
        assert!(
            canon
                .replace(": ", ":")
                .contains(&format!("h={};", h.join(":"))),
            "{canon}"
        );
    }

    #[test]
    fn a_key_that_is_not_pem_is_refused_by_its_key_path() {
        let d = Dkim {
            domain: "example.it".into(),
            selector: "s1".into(),
            algorithm: DkimAlgorithm::RsaSha256,
            private_key: "not a key".into(),
        };
        let e = DkimSigner::new(&d).unwrap_err().to_string();
        assert!(e.starts_with("smtp.dkim.private_key: "), "{e}");
    }

    #[test]
    fn rsa_spki_wraps_the_key() {
        let spki = rsa_spki(&[0x30, 0x03, 0x02, 0x01, 0x01]);
        assert_eq!(spki[0], 0x30);
        assert_eq!(
            &spki[2..17],
            &[
                0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
                0x00
            ]
        );
        let mut long = Vec::new();
        der_len(300, &mut long);
        assert_eq!(long, vec![0x82, 0x01, 0x2c]);
    }
}
