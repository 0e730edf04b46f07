//! Signed status links: a short token that names one ticket, when it was issued and how long it
//! opens, sealed with HMAC-SHA256 (truncated to 128 bits) under the portal's key.
//!
//! Layout before base64url (no padding): version `1` · issued at (u32, Unix seconds, big
//! endian) · days valid (u16) · the ticket's internal id (LEB128) · tag (16 bytes). A link
//! for ticket id 1,000,000 is 35 characters. Nothing in it can be changed without the key:
//! every byte is under the tag, and the tag is compared in constant time. Revocation is kept
//! beside the ticket (links issued at or before the instant it was revoked are refused), so a
//! token holds no state of its own.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::time::Timestamp;

const VERSION: u8 = 1;
const TAG_BYTES: usize = 16;
/// Domain separation: a tag made for something else with the same key never fits a link.
const CONTEXT: &[u8] = b"messo/portal-link/v1\0";
/// The longest text that can be a token (1 + 4 + 2 + 10 + 16 bytes in base64url).
pub const MAX_TOKEN_CHARS: usize = 44;

/// What a valid link says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub ticket_id: i64,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Why a link does not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not a token at all (wrong characters, length or layout).
    #[error("not a status link")]
    Malformed,
    /// Shaped like a token, but not signed by our key: altered or made up.
    #[error("the link's signature does not match")]
    Forged,
    /// Genuine, but past its expiry.
    #[error("the link expired")]
    Expired {
        ticket_id: i64,
        expired_at: Timestamp,
    },
}

/// The keys links are signed and checked with.
#[derive(Clone)]
pub struct LinkKeys {
    current: Hmac<Sha256>,
    /// Still accepted while a new key takes over.
    previous: Option<Hmac<Sha256>>,
    /// The validity in force now (`portal.link_valid_days`): a link opens until its issue
    /// instant plus the shorter of the days it carries and these.
    max_days: Option<u16>,
}

impl std::fmt::Debug for LinkKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkKeys")
            .field("previous", &self.previous.is_some())
            .field("max_days", &self.max_days)
            .finish_non_exhaustive()
    }
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

impl LinkKeys {
    pub fn new(current: &[u8], previous: Option<&[u8]>) -> LinkKeys {
        LinkKeys {
            current: mac(current),
            previous: previous.map(mac),
            max_days: None,
        }
    }

    /// Links open for at most `days` after they were issued, whatever validity they carry: the
    /// days are inside the token, so without this a lower `portal.link_valid_days` would not
    /// shorten the links already sent.
    pub fn with_max_valid_days(mut self, days: u16) -> LinkKeys {
        self.max_days = Some(days);
        self
    }

    fn tag(key: &Hmac<Sha256>, body: &[u8]) -> Hmac<Sha256> {
        let mut m = key.clone();
        m.update(CONTEXT);
        m.update(body);
        m
    }

    /// A link to ticket `ticket_id`, issued at `now`, opening for `days` days.
    pub fn sign(&self, ticket_id: i64, now: Timestamp, days: u16) -> String {
        let mut bytes = Vec::with_capacity(33);
        bytes.push(VERSION);
        bytes.extend_from_slice(&(now.0.clamp(0, i64::from(u32::MAX)) as u32).to_be_bytes());
        bytes.extend_from_slice(&days.to_be_bytes());
        let mut id = ticket_id.max(0) as u64;
        loop {
            let low = (id & 0x7f) as u8;
            id >>= 7;
            if id == 0 {
                bytes.push(low);
                break;
            }
            bytes.push(low | 0x80);
        }
        let tag = Self::tag(&self.current, &bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag[..TAG_BYTES]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Checks a token's signature and expiry at `now`. The tag is checked before anything it
    /// covers is believed.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<Link, LinkError> {
        if token.is_empty()
            || token.len() > MAX_TOKEN_CHARS
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(LinkError::Malformed);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| LinkError::Malformed)?;
        if bytes.len() < 1 + 4 + 2 + 1 + TAG_BYTES || bytes[0] != VERSION {
            return Err(LinkError::Malformed);
        }
        let (body, tag) = bytes.split_at(bytes.len() - TAG_BYTES);
        let fits = |k: &Hmac<Sha256>| Self::tag(k, body).verify_truncated_left(tag).is_ok();
        if !fits(&self.current) && !self.previous.as_ref().is_some_and(fits) {
            return Err(LinkError::Forged);
        }
        let issued = u32::from_be_bytes([body[1], body[2], body[3], body[4]]);
        let days = u16::from_be_bytes([body[5], body[6]]);
        let mut id: u64 = 0;
        let mut shift = 0;
        let varint = &body[7..];
        for (i, b) in varint.iter().enumerate() {
            if shift > 56 {
                return Err(LinkError::Malformed);
            }
            id |= u64::from(b & 0x7f) << shift;
            shift += 7;
            let last = i + 1 == varint.len();
            if (b & 0x80 == 0) != last {
                return Err(LinkError::Malformed);
            }
        }
        let ticket_id = i64::try_from(id).map_err(|_| LinkError::Malformed)?;
        let issued_at = Timestamp(i64::from(issued));
        let days = self.max_days.map_or(days, |max| days.min(max));
        let expires_at = issued_at.plus(i64::from(days) * 86_400);
        if now >= expires_at {
            return Err(LinkError::Expired {
                ticket_id,
                expired_at: expires_at,
            });
        }
        Ok(Link {
            ticket_id,
            issued_at,
            expires_at,
        })
    }
}

/// Domain separation for the status page's form tokens: a form token is never a link's tag.
const FORM_CONTEXT: &[u8] = b"messo/portal-form/v1\0";

impl LinkKeys {
    fn form_tag(key: &Hmac<Sha256>, purpose: &str, token: &str) -> Hmac<Sha256> {
        let mut m = key.clone();
        m.update(FORM_CONTEXT);
        m.update(purpose.as_bytes());
        m.update(b"\0");
        m.update(token.as_bytes());
        m
    }

    /// The token a form of the status page carries for `purpose`, bound to the page's link
    /// `token`: it proves the form was served by us for that very link (a form copied to
    /// another link, or made up, does not fit). 128 bits, base64url.
    pub fn form_token(&self, purpose: &str, token: &str) -> String {
        let tag = Self::form_tag(&self.current, purpose, token)
            .finalize()
            .into_bytes();
        URL_SAFE_NO_PAD.encode(&tag[..TAG_BYTES])
    }

    /// Whether `form` is the form token of `purpose` for link `token` (under the current or
    /// the previous key), compared in constant time.
    pub fn verify_form_token(&self, purpose: &str, token: &str, form: &str) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(form) else {
            return false;
        };
        if tag.len() != TAG_BYTES {
            return false;
        }
        let fits = |k: &Hmac<Sha256>| {
            Self::form_tag(k, purpose, token)
                .verify_truncated_left(&tag)
                .is_ok()
        };
        fits(&self.current) || self.previous.as_ref().is_some_and(fits)
    }
}

/// Domain separation for access codes: a code is never a link's or a form's tag.
const CODE_CONTEXT: &[u8] = b"messo/access-code/v1\0";

/// The digits of an access code.
pub const ACCESS_CODE_DIGITS: usize = 6;

impl LinkKeys {
    fn code_with(key: &Hmac<Sha256>, ticket_id: i64, epoch: Option<Timestamp>) -> String {
        let mut m = key.clone();
        m.update(CODE_CONTEXT);
        m.update(&ticket_id.to_be_bytes());
        m.update(&epoch.map_or(0, |t| t.0).to_be_bytes());
        let tag = m.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&tag[..8]);
        // 2^64 is not a multiple of 10^6: the bias, under one part in 10^13, is immaterial.
        format!("{:06}", u64::from_be_bytes(first) % 1_000_000)
    }

    /// The access code of ticket `ticket_id`: six digits printed in the receipt and on the
    /// status page, which let a caller or an SMS sender who is not the ticket's mobile hear its
    /// state. `epoch` is the instant the ticket's links were last revoked: revoking them (the
    /// console, the API) also gives the ticket a new code.
    pub fn access_code(&self, ticket_id: i64, epoch: Option<Timestamp>) -> String {
        Self::code_with(&self.current, ticket_id, epoch)
    }

    /// Whether `code` is ticket `ticket_id`'s access code under the current or the previous
    /// key (so a key rotation does not void the codes already sent), compared in constant time.
    /// Anything but six ASCII digits is not a code.
    pub fn access_code_matches(
        &self,
        ticket_id: i64,
        epoch: Option<Timestamp>,
        code: &str,
    ) -> bool {
        if code.len() != ACCESS_CODE_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        let same = |k: &Hmac<Sha256>| {
            let want = Self::code_with(k, ticket_id, epoch);
            want.bytes()
                .zip(code.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
        };
        let current = same(&self.current);
        let previous = self.previous.as_ref().is_some_and(same);
        current | previous
    }
}

/// Writes the status links that go into citizens' messages.
#[derive(Debug, Clone)]
pub struct LinkMaker {
    pub keys: LinkKeys,
    /// `https://urp.comune.example.it`, no trailing slash.
    pub base_url: String,
    pub valid_days: u16,
}

/// The path under which status links open.
pub const PATH: &str = "/s/";

impl LinkMaker {
    /// The status page's address for ticket `ticket_id`, issued at `now`.
    pub fn url(&self, ticket_id: i64, now: Timestamp) -> String {
        format!(
            "{}{PATH}{}",
            self.base_url,
            self.keys.sign(ticket_id, now, self.valid_days)
        )
    }
}

/// Whether a genuine link was revoked: links issued at or before the ticket's revocation
/// instant no longer open (a new message carries a new link).
pub fn revoked(link: &Link, revoked_at: Option<Timestamp>) -> bool {
    revoked_at.is_some_and(|r| link.issued_at <= r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: Timestamp = Timestamp(1_772_442_900); // 2026-03-02T09:15:00Z

    fn keys() -> LinkKeys {
        LinkKeys::new(KEY, None)
    }

    #[test]
    fn an_access_code_is_six_digits_per_ticket_and_changes_when_links_are_revoked() {
        let k = keys();
        let code = k.access_code(42, None);
        assert_eq!(code.len(), ACCESS_CODE_DIGITS);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        assert!(k.access_code_matches(42, None, &code));
        assert_ne!(
            k.access_code(43, None),
            code,
            "another ticket, another code"
        );
        let revoked = Some(NOW);
        assert_ne!(k.access_code(42, revoked), code);
        assert!(
            !k.access_code_matches(42, revoked, &code),
            "revoking rotates the code"
        );
        for bad in ["", "12345", "1234567", "12a456", " 123456", "١٢٣٤٥٦"] {
            assert!(!k.access_code_matches(42, None, bad), "{bad:?}");
        }
    }

    #[test]
    fn an_access_code_made_under_the_previous_key_still_opens_and_another_key_does_not() {
        let old = LinkKeys::new(b"an older key, retired by rotation!!", None);
        let code = old.access_code(7, None);
        let rotated = LinkKeys::new(KEY, Some(b"an older key, retired by rotation!!"));
        assert!(rotated.access_code_matches(7, None, &code));
        assert!(!keys().access_code_matches(7, None, &code));
    }

    #[test]
    fn access_codes_spread_over_the_digits() {
        let k = keys();
        let mut first = [0u32; 10];
        for id in 0..5000 {
            let c = k.access_code(id, None);
            first[usize::from(c.as_bytes()[0] - b'0')] += 1;
        }
        assert!(first.iter().all(|&n| (350..=650).contains(&n)), "{first:?}");
    }

    #[test]
    fn a_signed_link_opens_until_it_expires() {
        let t = keys().sign(1_000_000, NOW, 180);
        assert_eq!(t.len(), 35, "{t}");
        let l = keys().verify(&t, NOW).expect("valid");
        assert_eq!(l.ticket_id, 1_000_000);
        assert_eq!(l.issued_at, NOW);
        assert_eq!(l.expires_at, NOW.plus(180 * 86_400));
        assert!(keys().verify(&t, NOW.plus(180 * 86_400 - 1)).is_ok());
        assert_eq!(
            keys().verify(&t, NOW.plus(180 * 86_400)),
            Err(LinkError::Expired {
                ticket_id: 1_000_000,
                expired_at: NOW.plus(180 * 86_400)
            })
        );
    }

    #[test]
    fn a_lower_validity_now_shortens_links_already_sent() {
        // Sent with 180 days; the office then lowers the validity to 30.
        let t = keys().sign(9, NOW, 180);
        let now = keys().with_max_valid_days(30);
        let l = now
            .verify(&t, NOW.plus(30 * 86_400 - 1))
            .expect("inside 30 days");
        assert_eq!(l.expires_at, NOW.plus(30 * 86_400));
        assert_eq!(
            now.verify(&t, NOW.plus(30 * 86_400)),
            Err(LinkError::Expired {
                ticket_id: 9,
                expired_at: NOW.plus(30 * 86_400)
            })
        );
        // Raising it never lengthens a link: it keeps the days it was sent with.
        let longer = keys().with_max_valid_days(365);
        assert_eq!(
            longer.verify(&t, NOW.plus(180 * 86_400)),
            Err(LinkError::Expired {
                ticket_id: 9,
                expired_at: NOW.plus(180 * 86_400)
            })
        );
        assert!(longer.verify(&t, NOW.plus(180 * 86_400 - 1)).is_ok());
    }

    #[test]
    fn another_key_does_not_open_it_but_a_previous_key_does() {
        let old = LinkKeys::new(b"an old key that is being retired!", None);
        let t = old.sign(7, NOW, 30);
        assert_eq!(keys().verify(&t, NOW), Err(LinkError::Forged));
        let rotating = LinkKeys::new(KEY, Some(b"an old key that is being retired!"));
        assert_eq!(rotating.verify(&t, NOW).map(|l| l.ticket_id), Ok(7));
        // New links are signed with the current key only.
        let fresh = rotating.sign(7, NOW, 30);
        assert!(keys().verify(&fresh, NOW).is_ok());
        assert_eq!(old.verify(&fresh, NOW), Err(LinkError::Forged));
    }

    #[test]
    fn a_maker_writes_an_address_that_opens() {
        let m = LinkMaker {
            keys: keys(),
            base_url: "https://urp.comune.example.it".into(),
            valid_days: 90,
        };
        let url = m.url(42, NOW);
        let token = url
            .strip_prefix("https://urp.comune.example.it/s/")
            .expect("prefix");
        assert_eq!(keys().verify(token, NOW).map(|l| l.ticket_id), Ok(42));
    }

    #[test]
    fn junk_is_malformed_not_forged() {
        for junk in [
            "",
            "abc",
            "../../etc/passwd",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "2026%2F000123",
            "a+b/c=",
        ] {
            assert_eq!(
                keys().verify(junk, NOW),
                Err(LinkError::Malformed),
                "{junk}"
            );
        }
    }

    #[test]
    fn revocation_covers_links_issued_up_to_that_instant() {
        let l = keys().verify(&keys().sign(3, NOW, 10), NOW).expect("valid");
        assert!(!revoked(&l, None));
        assert!(revoked(&l, Some(NOW)));
        assert!(revoked(&l, Some(NOW.plus(60))));
        assert!(!revoked(&l, Some(NOW.plus(-1))));
    }

    proptest! {
        #[test]
        fn every_link_round_trips(id in 0i64..i64::MAX, now in 0i64..4_000_000_000, days in 1u16..3651) {
            let t = keys().sign(id, Timestamp(now), days);
            prop_assert!(t.len() <= MAX_TOKEN_CHARS);
            let l = keys().verify(&t, Timestamp(now)).expect("valid");
            prop_assert_eq!(l.ticket_id, id);
            prop_assert_eq!(l.issued_at, Timestamp(now));
        }

        /// Changing any character of a genuine token never yields a link that opens, let alone
        /// one to another ticket.
        #[test]
        fn no_altered_token_opens(id in 0i64..10_000_000, pos in 0usize..64, c in prop::sample::select(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".chars().collect::<Vec<_>>()
        )) {
            let t = keys().sign(id, NOW, 30);
            let pos = pos % t.len();
            let mut chars: Vec<char> = t.chars().collect();
            prop_assume!(chars[pos] != c);
            chars[pos] = c;
            let altered: String = chars.into_iter().collect();
            prop_assert!(matches!(
                keys().verify(&altered, NOW),
                Err(LinkError::Forged | LinkError::Malformed)
            ), "{} opened", altered);
        }

        /// A token made up from random bytes never opens.
        #[test]
        fn random_tokens_never_open(bytes in prop::collection::vec(any::<u8>(), 24..33)) {
            let mut b = bytes;
            b[0] = VERSION;
            let t = URL_SAFE_NO_PAD.encode(&b);
            prop_assert!(keys().verify(&t, NOW).is_err());
        }
    }

    #[test]
    fn a_form_token_fits_only_its_link_and_purpose() {
        let keys = LinkKeys::new(b"a-key-of-thirty-two-characters-at-least", None);
        let link = keys.sign(7, Timestamp(1_800_000_000), 30);
        let other = keys.sign(8, Timestamp(1_800_000_000), 30);
        let form = keys.form_token("survey", &link);
        assert!(keys.verify_form_token("survey", &link, &form));
        assert!(!keys.verify_form_token("survey", &other, &form));
        assert!(!keys.verify_form_token("other", &link, &form));
        assert!(!keys.verify_form_token("survey", &link, ""));
        assert!(!keys.verify_form_token("survey", &link, "not base64!"));
        let mut altered = form.clone().into_bytes();
        altered[0] = if altered[0] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).expect("ascii");
        assert!(!keys.verify_form_token("survey", &link, &altered));
        // Another key's token does not fit; while rotating, the previous key's still does.
        let next = LinkKeys::new(
            b"the-next-key-of-thirty-two-characters",
            Some(b"a-key-of-thirty-two-characters-at-least"),
        );
        assert!(next.verify_form_token("survey", &link, &form));
        let stranger = LinkKeys::new(b"the-next-key-of-thirty-two-characters", None);
        assert!(!stranger.verify_form_token("survey", &link, &form));
    }
}
