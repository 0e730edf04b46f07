//! An e-mail address a mail server takes. Parsed once, with the rules sending uses: the SMTP
//! channel hands the address to `lettre`, so everything accepted here is a `lettre::Address`,
//! and on top of lettre's checks the ones it leaves out (dots in a row, a dot at either end of
//! the local part, domain labels of letters, digits and inner hyphens, RFC 5321 lengths).
//!
//! Only the plain `local@domain` form is taken: no display name (`Mario <a@x.it>`), no angle
//! brackets, no comments (`a(c)@x.it`), no quoted local part (`"a b"@x.it`), no list (`a@x.it;
//! b@y.it`), no IP address literal (`a@[192.0.2.1]`: a citizen's mailbox has a domain), ASCII
//! only (an internationalised domain is written in its `xn--` form). The text is kept exactly
//! as given: the local part may be case-sensitive, and stored tickets compare as written.

use std::fmt;
use std::str::FromStr;

/// The longest local part (RFC 5321 §4.5.3.1.1), in octets.
pub const MAX_LOCAL: usize = 64;
/// The longest address: a path is at most 256 octets with its angle brackets
/// (RFC 5321 §4.5.3.1.3).
pub const MAX_ADDRESS: usize = 254;
/// The longest domain label (RFC 1035 §2.3.4).
pub const MAX_LABEL: usize = 63;

/// Characters of an unquoted local part besides letters and digits (RFC 5322 `atext`).
const ATEXT: &str = "!#$%&'*+-/=?^_`{|}~";

/// Why a text is not an address we can send to. The messages never repeat the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("is empty")]
    Empty,
    #[error("is longer than {MAX_ADDRESS} characters")]
    TooLong,
    #[error("holds characters outside ASCII (write an internationalised domain in its xn-- form)")]
    NotAscii,
    #[error("must be a bare address like nome@example.it, without a name, brackets or spaces")]
    NotBare,
    #[error("must have exactly one @ between the name and the domain")]
    At,
    #[error("has a local part (before the @) longer than {MAX_LOCAL} characters")]
    LocalTooLong,
    #[error("has a dot at the start or end of the part before the @, or two dots in a row")]
    LocalDots,
    #[error(
        "may hold only letters, digits, dots and ! # $ % & ' * + - / = ? ^ _ ` {{ | }} ~ before the @"
    )]
    LocalChars,
    #[error("has an IP address instead of a domain")]
    IpLiteral,
    #[error("has a domain with an empty part (two dots in a row, or a dot at either end)")]
    EmptyLabel,
    #[error("has a domain part longer than {MAX_LABEL} characters")]
    LabelTooLong,
    #[error(
        "has a domain part that is not letters, digits and inner hyphens (no hyphen at either end)"
    )]
    LabelChars,
    #[error("has a domain without a dot, or one that ends in a number")]
    NotAHostName,
}

/// A valid e-mail address (see the module's rules). `as_str` gives the text as given.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailAddress {
    text: String,
    at: usize,
}

impl EmailAddress {
    /// Parses an address. Nothing is trimmed: callers that take free text trim first.
    pub fn parse(s: &str) -> Result<EmailAddress, EmailError> {
        if s.is_empty() {
            return Err(EmailError::Empty);
        }
        if !s.is_ascii() {
            return Err(EmailError::NotAscii);
        }
        if s.len() > MAX_ADDRESS {
            return Err(EmailError::TooLong);
        }
        if s.bytes().any(|b| {
            b.is_ascii_whitespace()
                || b.is_ascii_control()
                || matches!(
                    b,
                    b'<' | b'>' | b'(' | b')' | b'"' | b',' | b';' | b':' | b'\\'
                )
        }) {
            return Err(EmailError::NotBare);
        }
        let at = match (s.find('@'), s.rfind('@')) {
            (Some(a), Some(b)) if a == b => a,
            _ => return Err(EmailError::At),
        };
        let (local, domain) = (&s[..at], &s[at + 1..]);
        check_local(local)?;
        check_domain(domain)?;
        Ok(EmailAddress {
            text: s.to_owned(),
            at,
        })
    }

    /// The address as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The part before the `@`.
    pub fn local_part(&self) -> &str {
        &self.text[..self.at]
    }

    /// The part after the `@`.
    pub fn domain(&self) -> &str {
        &self.text[self.at + 1..]
    }
}

fn check_local(local: &str) -> Result<(), EmailError> {
    if local.is_empty() {
        return Err(EmailError::At);
    }
    if local.len() > MAX_LOCAL {
        return Err(EmailError::LocalTooLong);
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(EmailError::LocalDots);
    }
    if !local
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || ATEXT.contains(c))
    {
        return Err(EmailError::LocalChars);
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<(), EmailError> {
    if domain.is_empty() {
        return Err(EmailError::At);
    }
    if domain.starts_with('[') || domain.parse::<std::net::IpAddr>().is_ok() {
        return Err(EmailError::IpLiteral);
    }
    let labels: Vec<&str> = domain.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return Err(EmailError::EmptyLabel);
        }
        if label.len() > MAX_LABEL {
            return Err(EmailError::LabelTooLong);
        }
        if label.starts_with('-')
            || label.ends_with('-')
            || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(EmailError::LabelChars);
        }
    }
    let top = labels.last().copied().unwrap_or_default();
    if labels.len() < 2 || top.chars().all(|c| c.is_ascii_digit()) {
        return Err(EmailError::NotAHostName);
    }
    Ok(())
}

/// Why `s` is not an e-mail address the SMTP channel can send to ([`EmailAddress`]'s rules),
/// as a field message; `None` when it is one.
pub fn email_problem(s: &str) -> Option<String> {
    EmailAddress::parse(s)
        .err()
        .map(|e| format!("is not an e-mail address we can send to: it {e}"))
}

impl FromStr for EmailAddress {
    type Err = EmailError;

    fn from_str(s: &str) -> Result<EmailAddress, EmailError> {
        EmailAddress::parse(s)
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl AsRef<str> for EmailAddress {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn addresses_mail_servers_take_are_accepted() {
        for a in [
            "mario.rossi@example.it",
            "Mario.Rossi@Example.IT",
            "anna+urp-2026.000123@comune.roma.it",
            "o'brien@example.ie",
            "a@x.it",
            "x_y-z@sub.domain.example.com",
            "1234@example.it",
            "a!#$%&'*+-/=?^_`{|}~@example.it",
            "info@xn--citt-3ra.it",
            "urp@comune.123.it",
            "a@b-c.d1",
        ] {
            let e = EmailAddress::parse(a).unwrap_or_else(|e| panic!("{a}: {e}"));
            assert_eq!(e.as_str(), a);
        }
        let max_local = format!("{}@example.it", "l".repeat(MAX_LOCAL));
        assert!(EmailAddress::parse(&max_local).is_ok());
        let label = "d".repeat(MAX_LABEL);
        let long = format!("a@{label}.{label}.{label}.{}.it", "d".repeat(57));
        assert_eq!(long.len(), MAX_ADDRESS);
        assert!(EmailAddress::parse(&long).is_ok());
    }

    #[test]
    fn addresses_no_mail_server_takes_are_refused() {
        let label = "d".repeat(MAX_LABEL);
        let too_long = format!("a@{label}.{label}.{label}.{}.it", "d".repeat(58));
        let long_local = format!("{}@example.it", "l".repeat(MAX_LOCAL + 1));
        let long_label = format!("a@{}.it", "d".repeat(MAX_LABEL + 1));
        for (a, why) in [
            ("", EmailError::Empty),
            ("a..b@x.it", EmailError::LocalDots),
            (".a@x.it", EmailError::LocalDots),
            ("a.@x.it", EmailError::LocalDots),
            ("a@x..it", EmailError::EmptyLabel),
            ("a@.x.it", EmailError::EmptyLabel),
            ("a@x.it.", EmailError::EmptyLabel),
            ("<a@x.it>", EmailError::NotBare),
            ("Mario Rossi <a@x.it>", EmailError::NotBare),
            ("a(comment)@x.it", EmailError::NotBare),
            ("a@x.it(comment)", EmailError::NotBare),
            ("a@x.it;b@y.it", EmailError::NotBare),
            ("a@x.it, b@y.it", EmailError::NotBare),
            ("\"a b\"@x.it", EmailError::NotBare),
            ("\"a\"@x.it", EmailError::NotBare),
            ("a\\@b@x.it", EmailError::NotBare),
            (" a@x.it", EmailError::NotBare),
            ("a@x.it\n", EmailError::NotBare),
            ("a@x.it\r\nBcc: b@y.it", EmailError::NotBare),
            ("a\u{0}@x.it", EmailError::NotBare),
            ("a@b@x.it", EmailError::At),
            ("a.x.it", EmailError::At),
            ("@x.it", EmailError::At),
            ("a@", EmailError::At),
            ("a@[192.0.2.1]", EmailError::IpLiteral),
            ("a@[IPv6:2001:db8::1]", EmailError::NotBare),
            ("a@192.0.2.1", EmailError::IpLiteral),
            ("a@1.2.3", EmailError::NotAHostName),
            ("a@localhost", EmailError::NotAHostName),
            ("a@-x.it", EmailError::LabelChars),
            ("a@x-.it", EmailError::LabelChars),
            ("a@x_y.it", EmailError::LabelChars),
            ("a@x!.it", EmailError::LabelChars),
            ("a[b]@x.it", EmailError::LocalChars),
            ("mario.rossì@x.it", EmailError::NotAscii),
            ("a@città.it", EmailError::NotAscii),
            (long_local.as_str(), EmailError::LocalTooLong),
            (long_label.as_str(), EmailError::LabelTooLong),
            (too_long.as_str(), EmailError::TooLong),
        ] {
            assert_eq!(EmailAddress::parse(a), Err(why), "{a:?}");
        }
    }

    #[test]
    fn messages_never_repeat_the_address() {
        for a in ["segreto..x@x.it", "Segreto <s@x.it>", "segreto@x..it"] {
            let msg = EmailAddress::parse(a).unwrap_err().to_string();
            assert!(
                !msg.contains("segreto") && !msg.contains("Segreto"),
                "{msg}"
            );
        }
    }

    fn well_formed() -> impl Strategy<Value = String> {
        (
            "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,20}(\\.[a-zA-Z0-9_+-]{1,10}){0,3}",
            "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?){0,3}\\.[a-z]{2,6}",
        )
            .prop_map(|(l, d)| format!("{l}@{d}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn well_formed_addresses_are_accepted(s in well_formed()) {
            prop_assume!(s.len() <= MAX_ADDRESS && s.split('@').next().is_some_and(|l| l.len() <= MAX_LOCAL));
            prop_assume!(!s.split('@').next().is_some_and(|l| l.contains("..") || l.starts_with('.') || l.ends_with('.')));
            prop_assert!(EmailAddress::parse(&s).is_ok(), "{:?}", s);
        }
    }
}
