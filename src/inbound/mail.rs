//! Replies that citizens send by e-mail: a raw RFC 822 message read into the few fields Messo
//! keeps (sender, recipients, subject, plain text, attachments) and a flag for messages that no
//! person wrote (auto-replies, bounces).
//!
//! Pure: no I/O. Any byte string is accepted as input and none makes it panic; what is not a
//! message, or has no sender, comes back as a [`MailError`].

use mail_parser::{Address, HeaderValue, Message, MessageParser, MessagePart, MimeHeaders};

/// The longest text kept from a message's body, in characters.
pub const MAX_TEXT_CHARS: usize = 20_000;

/// The longest attachment file name kept, in characters.
pub const MAX_NAME_CHARS: usize = 120;

/// A file attached to a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailAttachment {
    /// A safe file name: no path separators, no control characters, no leading dots, at most
    /// [`MAX_NAME_CHARS`] characters; `allegato-N` (N counting from 1) when the message gives none.
    pub name: String,
    /// The MIME type, lowercased (`application/octet-stream` when the message gives none).
    pub content_type: String,
    /// The decoded content. Text attachments come back as UTF-8, converted from their charset.
    pub bytes: Vec<u8>,
}

/// What Messo keeps of an e-mail reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailReply {
    /// The Message-ID, without angle brackets.
    pub message_id: Option<String>,
    /// The sender's bare address, lowercased.
    pub from: String,
    /// The bare, lowercased addresses of To, Cc and Delivered-To: each once, in that order.
    pub to: Vec<String>,
    /// The subject, decoded (RFC 2047) and trimmed.
    pub subject: String,
    /// The plain text of the body; for a message with only HTML, its text (tags dropped, entities
    /// decoded). Line ends are `\n`; at most [`MAX_TEXT_CHARS`] characters.
    pub text: String,
    /// The attachments, inline ones included, in the order of the message.
    pub attachments: Vec<MailAttachment>,
    /// True when no person wrote the message: an auto-reply, a bounce, a list or bulk message.
    pub automatic: bool,
    /// The raw values of its `Authentication-Results` headers, top first (the topmost was
    /// added by the last server it passed through). At most [`MAX_AUTH_RESULTS`].
    pub auth_results: Vec<String>,
}

/// The most `Authentication-Results` headers kept from one message.
pub const MAX_AUTH_RESULTS: usize = 32;

/// Why a byte string was not read as a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// The bytes have no message header at all.
    #[error("not an e-mail message: no header found")]
    NotAMessage,
    /// The message has no From header with a usable address.
    #[error("the message has no sender address")]
    NoSender,
}

/// Reads a raw RFC 822 (RFC 5322 + MIME) message.
pub fn parse_rfc822(raw: &[u8]) -> Result<MailReply, MailError> {
    let message = MessageParser::default()
        .parse(raw)
        .ok_or(MailError::NotAMessage)?;
    if message.headers().is_empty() {
        return Err(MailError::NotAMessage);
    }

    let from = message
        .from()
        .and_then(first_address)
        .ok_or(MailError::NoSender)?;

    let mut to: Vec<String> = Vec::new();
    let mut add = |address: String| {
        if !to.contains(&address) {
            to.push(address);
        }
    };
    for list in message.all_to().chain(message.all_cc()) {
        for addr in list.iter() {
            if let Some(a) = addr.address().and_then(bare_address) {
                add(a);
            }
        }
    }
    for value in message.header_values("Delivered-To") {
        if let Some(a) = header_text(value).and_then(bare_address) {
            add(a);
        }
    }

    let message_id = message
        .message_id()
        .map(|id| {
            id.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .trim()
        })
        .filter(|id| !id.is_empty())
        .map(|id| strip_controls(id, false));

    let subject = strip_controls(message.subject().unwrap_or_default(), false)
        .trim()
        .to_owned();

    let auth_results = message
        .headers_raw()
        .filter(|(name, _)| name.eq_ignore_ascii_case("Authentication-Results"))
        .map(|(_, value)| value.trim().to_owned())
        .take(MAX_AUTH_RESULTS)
        .collect();

    Ok(MailReply {
        message_id,
        auth_results,
        automatic: is_automatic(&message, &from),
        from,
        to,
        subject,
        text: body_text(&message),
        attachments: attachments(&message),
    })
}

/// The first usable address of a From header (groups flattened).
fn first_address(address: &Address<'_>) -> Option<String> {
    address
        .iter()
        .find_map(|a| a.address().and_then(bare_address))
}

/// `addr-spec` as found in a header, lowercased; None when it cannot be an address.
fn bare_address(raw: &str) -> Option<String> {
    let a = raw
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    let (local, domain) = a.rsplit_once('@')?;
    let usable = !local.is_empty()
        && !domain.is_empty()
        && a.len() <= 320
        && !a.chars().any(|c| c.is_whitespace() || c.is_control());
    usable.then(|| a.to_lowercase())
}

/// The text of an unstructured header value.
fn header_text<'a>(value: &'a HeaderValue<'_>) -> Option<&'a str> {
    match value {
        HeaderValue::Text(t) => Some(t.as_ref()),
        HeaderValue::TextList(list) => list.first().map(|t| t.as_ref()),
        HeaderValue::Address(a) => a.first().and_then(|a| a.address()),
        _ => None,
    }
}

/// The raw value of the first header `name`, trimmed and lowercased.
fn raw_header_lower(message: &Message<'_>, name: &str) -> Option<String> {
    message
        .header_raw(name)
        .map(|v| v.trim().to_ascii_lowercase())
}

/// Auto-replies, bounces and bulk mail, by the headers that mark them.
fn is_automatic(message: &Message<'_>, from: &str) -> bool {
    let first_token = |v: &str| {
        v.split([';', '(', ' ', '\t', '\r', '\n'])
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    if let Some(v) = raw_header_lower(message, "Auto-Submitted")
        && first_token(&v) != "no"
    {
        return true;
    }
    if let Some(v) = raw_header_lower(message, "Precedence")
        && matches!(
            first_token(&v).as_str(),
            "bulk" | "junk" | "auto_reply" | "list"
        )
    {
        return true;
    }
    if message.header_raw("X-Autoreply").is_some() || message.header_raw("X-Autorespond").is_some()
    {
        return true;
    }
    if let Some(v) = raw_header_lower(message, "Return-Path") {
        let compact: String = v.chars().filter(|c| !c.is_whitespace()).collect();
        if compact == "<>" || compact.is_empty() {
            return true;
        }
    }
    if from
        .split('@')
        .next()
        .is_some_and(|local| local.eq_ignore_ascii_case("mailer-daemon"))
    {
        return true;
    }
    message.root_part().content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    })
}

/// The message's text bodies joined (HTML-only bodies turned into text), cleaned and cut.
fn body_text(message: &Message<'_>) -> String {
    let mut text = String::new();
    for i in 0..message.text_body_count() {
        if let Some(part) = message.body_text(i) {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&part);
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            break;
        }
    }
    let cleaned = strip_controls(&text.replace("\r\n", "\n"), true);
    let trimmed = cleaned.trim_matches(|c: char| c == '\n' || c == ' ' || c == '\t');
    trimmed.chars().take(MAX_TEXT_CHARS).collect()
}

/// Drops control characters (NUL, escapes, stray CR...). With `keep_lines`, `\n` and `\t` stay.
fn strip_controls(s: &str, keep_lines: bool) -> String {
    s.chars()
        .filter_map(|c| match c {
            '\n' | '\t' if keep_lines => Some(c),
            '\n' | '\t' | '\r' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

/// Every attachment part, with a safe name.
fn attachments(message: &Message<'_>) -> Vec<MailAttachment> {
    message
        .attachments()
        .enumerate()
        .map(|(i, part)| MailAttachment {
            name: safe_file_name(part.attachment_name().unwrap_or_default(), i + 1),
            content_type: content_type_of(part),
            bytes: part.contents().to_vec(),
        })
        .collect()
}

/// `type/subtype`, lowercased; `message/rfc822` for attached messages without a type.
fn content_type_of(part: &MessagePart<'_>) -> String {
    match part.content_type() {
        Some(ct) => {
            let main = ct.ctype().trim().to_ascii_lowercase();
            let sub = ct.subtype().unwrap_or_default().trim().to_ascii_lowercase();
            let token = |s: &str| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
            };
            if token(&main) && token(&sub) {
                format!("{main}/{sub}")
            } else {
                "application/octet-stream".to_owned()
            }
        }
        None if part.message().is_some() => "message/rfc822".to_owned(),
        None => "application/octet-stream".to_owned(),
    }
}

/// A file name that is safe to store and to offer for download: only the last path component,
/// control characters dropped, characters that are special on common file systems replaced, no
/// leading dots or spaces, at most [`MAX_NAME_CHARS`] characters (the extension kept when it
/// fits). `allegato-{n}` when nothing is left.
pub fn safe_file_name(raw: &str, n: usize) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| match c {
            ':' | '*' | '?' | '"' | '<' | '>' | '|' => '_',
            c => c,
        })
        .collect();
    let cleaned = cleaned
        .trim_start_matches(|c: char| c == '.' || c.is_whitespace())
        .trim_end_matches(|c: char| c == '.' || c.is_whitespace());
    if cleaned.is_empty() {
        return format!("allegato-{n}");
    }
    if cleaned.chars().count() <= MAX_NAME_CHARS {
        return cleaned.to_owned();
    }
    // Too long: keep a short extension and cut the stem.
    if let Some((stem, ext)) = cleaned.rsplit_once('.') {
        let ext_len = ext.chars().count();
        if (1..=16).contains(&ext_len) && !stem.is_empty() {
            let keep = MAX_NAME_CHARS - ext_len - 1;
            let stem: String = stem.chars().take(keep).collect();
            return format!("{}.{ext}", stem.trim_end());
        }
    }
    cleaned
        .chars()
        .take(MAX_NAME_CHARS)
        .collect::<String>()
        .trim_end()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PLAIN: &[u8] = b"Return-Path: <mario.rossi@example.it>\r\n\
Delivered-To: URP+2026-000123@comune.example.it\r\n\
From: Mario Rossi <Mario.Rossi@Example.IT>\r\n\
To: \"URP Comune\" <URP@comune.example.it>\r\n\
Cc: anna.bianchi@example.it, urp@comune.example.it\r\n\
Subject:   Re: Richiesta URP-2026-000123   \r\n\
Message-ID: <CAF1234.5678@mail.example.it>\r\n\
Date: Fri, 27 Nov 2026 09:15:00 +0100\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Buongiorno,\r\n\
allego quanto richiesto. Perch\xc3\xa9 serve ancora?\r\n\
\r\n\
Mario\r\n";

    const ALTERNATIVE: &[u8] = b"From: anna.bianchi@example.it\r\n\
To: urp@comune.example.it\r\n\
Subject: Re: pratica\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=ISO-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Grazie, =E8 tutto chiaro.\r\n\
--b1\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<html><body><p>Grazie, <b>HTML</b></p></body></html>\r\n\
--b1--\r\n";

    const PDF_BYTES: &[u8] = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n";

    fn mixed_with(file_name_params: &str) -> Vec<u8> {
        format!(
            "From: Mario Rossi <mario.rossi@example.it>\r\n\
To: urp@comune.example.it\r\n\
Subject: =?UTF-8?B?UmU6IFJpY2hpZXN0YSBVUlAtMjAyNi0wMDAxMjMg4oCTIGludGVncmF6aW9uZSDDqCBwcm9udGE=?=\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"=_mix\"\r\n\
\r\n\
preamble\r\n\
--=_mix\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
In allegato il documento.\r\n\
--=_mix\r\n\
Content-Type: application/pdf{file_name_params}\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQKJeLjz9MKMSAwIG9iago8PCAvVHlwZSAvQ2F0YWxvZyA+PgplbmRvYmoKdHJh\r\n\
aWxlcgo8PCAvUm9vdCAxIDAgUiA+PgolJUVPRgo=\r\n\
--=_mix--\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn plain_text_message() {
        let r = parse_rfc822(PLAIN).expect("parses");
        assert_eq!(
            r.message_id.as_deref(),
            Some("CAF1234.5678@mail.example.it")
        );
        assert_eq!(r.from, "mario.rossi@example.it");
        assert_eq!(
            r.to,
            vec![
                "urp@comune.example.it".to_owned(),
                "anna.bianchi@example.it".to_owned(),
                "urp+2026-000123@comune.example.it".to_owned(),
            ]
        );
        assert_eq!(r.subject, "Re: Richiesta URP-2026-000123");
        assert_eq!(
            r.text,
            "Buongiorno,\nallego quanto richiesto. Perché serve ancora?\n\nMario"
        );
        assert!(r.attachments.is_empty());
        assert!(!r.automatic);
    }

    #[test]
    fn authentication_results_are_kept_top_first() {
        let raw =
            b"Authentication-Results: mx.top.example;\r\n\tdmarc=pass header.from=example.it\r\n\
Received: from x\r\n\
authentication-results: mx.below.example; dmarc=fail\r\n\
From: a@example.it\r\n\r\nok\r\n";
        let r = parse_rfc822(raw).expect("parses");
        assert_eq!(r.auth_results.len(), 2);
        assert!(
            r.auth_results[0].starts_with("mx.top.example;"),
            "{:?}",
            r.auth_results
        );
        assert!(r.auth_results[1].starts_with("mx.below.example;"));
        assert!(parse_rfc822(PLAIN).expect("parses").auth_results.is_empty());
    }

    #[test]
    fn multipart_alternative_takes_the_plain_part() {
        let r = parse_rfc822(ALTERNATIVE).expect("parses");
        assert_eq!(r.from, "anna.bianchi@example.it");
        assert_eq!(r.text, "Grazie, è tutto chiaro.");
        assert!(r.attachments.is_empty());
        assert_eq!(r.message_id, None);
    }

    #[test]
    fn html_only_becomes_text_without_markup() {
        let raw = b"From: a@example.it\r\nSubject: html\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
<html><head><title>t</title><style>p{color:red}</style></head><body>\
<script>alert('x')</script><p>Caro Ufficio &amp; co.,</p><p>citt&agrave; &#232; &lt;bella&gt;</p></body></html>\r\n";
        let r = parse_rfc822(raw).expect("parses");
        assert!(
            !r.text.contains("<p>") && !r.text.contains("title"),
            "{:?}",
            r.text
        );
        assert!(r.text.contains("Caro Ufficio & co.,"), "{:?}", r.text);
        assert!(r.text.contains("città è <bella>"), "{:?}", r.text);
        assert!(!r.text.contains("alert"), "{:?}", r.text);
        assert!(!r.text.contains("color"), "{:?}", r.text);
    }

    #[test]
    fn multipart_mixed_with_a_pdf() {
        let raw = mixed_with("; name=\"modulo firmato.pdf\"");
        let r = parse_rfc822(&raw).expect("parses");
        assert_eq!(r.text, "In allegato il documento.");
        assert_eq!(r.attachments.len(), 1);
        let a = &r.attachments[0];
        assert_eq!(a.name, "modulo firmato.pdf");
        assert_eq!(a.content_type, "application/pdf");
        assert_eq!(a.bytes, PDF_BYTES);
    }

    #[test]
    fn attachment_without_a_name_is_numbered() {
        let raw = mixed_with("");
        let r = parse_rfc822(&raw).expect("parses");
        assert_eq!(r.attachments.len(), 1);
        assert_eq!(r.attachments[0].name, "allegato-1");
        assert_eq!(r.attachments[0].bytes, PDF_BYTES);
    }

    #[test]
    fn encoded_subject_with_accents() {
        let r = parse_rfc822(&mixed_with("")).expect("parses");
        assert_eq!(
            r.subject,
            "Re: Richiesta URP-2026-000123 – integrazione è pronta"
        );
        // Two adjacent Q-encoded words split mid-word, as Python's e-mail package writes them.
        let raw = b"From: a@example.it\r\n\
Subject: =?utf-8?q?Re=3A_Richiesta_URP-2026-000123_=E2=80=93_integrazione_=C3=A8_pron?=\r\n =?utf-8?q?ta?=\r\n\
\r\nok\r\n";
        let r = parse_rfc822(raw).expect("parses");
        assert_eq!(
            r.subject,
            "Re: Richiesta URP-2026-000123 – integrazione è pronta"
        );
        let raw = b"From: a@example.it\r\nSubject: =?ISO-8859-1?Q?Perch=E8_non_=E8_arrivata=3F?=\r\n\r\nok\r\n";
        assert_eq!(
            parse_rfc822(raw).expect("parses").subject,
            "Perchè non è arrivata?"
        );
    }

    #[test]
    fn path_traversal_in_a_name_is_neutralised() {
        let raw = mixed_with("; name=\"../../etc/passwd\"");
        let r = parse_rfc822(&raw).expect("parses");
        assert_eq!(r.attachments[0].name, "passwd");
        let raw = mixed_with(";\r\n name=\"..\\\\..\\\\windows\\\\win.ini\"");
        let r = parse_rfc822(&raw).expect("parses");
        assert_eq!(r.attachments[0].name, "win.ini");

        assert_eq!(safe_file_name("../../etc/passwd", 1), "passwd");
        assert_eq!(safe_file_name("..", 2), "allegato-2");
        assert_eq!(safe_file_name("../", 3), "allegato-3");
        assert_eq!(safe_file_name(".bashrc", 1), "bashrc");
        assert_eq!(
            safe_file_name("a\u{0}b\r\nc\u{1b}[31m.pdf", 1),
            "abc[31m.pdf"
        );
        assert_eq!(safe_file_name("CON:<x>|?.txt", 1), "CON__x___.txt");
        assert_eq!(safe_file_name("   ", 4), "allegato-4");
        let long = format!("{}.pdf", "è".repeat(300));
        let cut = safe_file_name(&long, 1);
        assert_eq!(cut.chars().count(), MAX_NAME_CHARS);
        assert!(cut.ends_with(".pdf"));
        let long = "x".repeat(500);
        assert_eq!(safe_file_name(&long, 1).chars().count(), MAX_NAME_CHARS);
    }

    #[test]
    fn auto_replies_and_bounces_are_automatic() {
        let base = "From: mario.rossi@example.it\r\nTo: urp@comune.example.it\r\nSubject: Fuori ufficio\r\n";
        for extra in [
            "Auto-Submitted: auto-replied\r\n",
            "Auto-Submitted: auto-generated (vacation)\r\n",
            "Precedence: bulk\r\n",
            "Precedence: junk\r\n",
            "Precedence: auto_reply\r\n",
            "Precedence: list\r\n",
            "X-Autoreply: yes\r\n",
            "X-Autorespond: Fuori ufficio\r\n",
            "Return-Path: <>\r\n",
        ] {
            let raw = format!("{base}{extra}\r\nSono fuori ufficio.\r\n");
            let r = parse_rfc822(raw.as_bytes()).expect("parses");
            assert!(r.automatic, "{extra:?} should be automatic");
        }
        for extra in ["Auto-Submitted: no\r\n", "Precedence: normal\r\n", ""] {
            let raw = format!("{base}{extra}\r\nRisposta vera.\r\n");
            let r = parse_rfc822(raw.as_bytes()).expect("parses");
            assert!(!r.automatic, "{extra:?} should not be automatic");
        }

        let bounce = b"From: Mail Delivery System <MAILER-DAEMON@mx.example.it>\r\n\
To: urp@comune.example.it\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\r\n\
\r\n\
--r\r\n\
Content-Type: text/plain\r\n\
\r\n\
The message could not be delivered.\r\n\
--r\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.example.it\r\n\
--r--\r\n";
        let r = parse_rfc822(bounce).expect("parses");
        assert!(r.automatic);
        assert_eq!(r.from, "mailer-daemon@mx.example.it");

        let report_only = b"From: reports@example.it\r\nContent-Type: multipart/report; boundary=x\r\n\r\n--x\r\n\r\nhi\r\n--x--\r\n";
        assert!(parse_rfc822(report_only).expect("parses").automatic);
    }

    #[test]
    fn errors() {
        assert_eq!(parse_rfc822(b""), Err(MailError::NotAMessage));
        assert_eq!(
            parse_rfc822(b"Subject: nobody\r\n\r\nbody\r\n"),
            Err(MailError::NoSender)
        );
        assert_eq!(
            parse_rfc822(b"From: undisclosed\r\n\r\nbody\r\n"),
            Err(MailError::NoSender)
        );
    }

    #[test]
    fn long_bodies_are_cut_and_controls_dropped() {
        let mut raw = b"From: a@example.it\r\nSubject: a\x07b\r\n\r\n".to_vec();
        raw.extend(std::iter::repeat_n(b'x', MAX_TEXT_CHARS + 500));
        raw.extend_from_slice(b"\x00\x1b");
        let r = parse_rfc822(&raw).expect("parses");
        assert_eq!(r.text.chars().count(), MAX_TEXT_CHARS);
        assert_eq!(r.subject, "ab");
        let r = parse_rfc822(b"From: a@example.it\r\n\r\nuno\x00due\r\n").expect("parses");
        assert_eq!(r.text, "unodue");
    }

    fn valid_samples() -> Vec<Vec<u8>> {
        vec![
            PLAIN.to_vec(),
            ALTERNATIVE.to_vec(),
            mixed_with("; name=\"../../etc/passwd\""),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse_rfc822(&raw);
        }

        #[test]
        fn mutated_messages_never_panic(
            sample in 0usize..3,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..24),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut raw = valid_samples().swap_remove(sample);
            for (at, byte, op) in edits {
                if raw.is_empty() {
                    raw.push(byte);
                    continue;
                }
                let i = at.index(raw.len());
                match op {
                    0 => raw[i] = byte,
                    1 => raw.insert(i, byte),
                    2 => { raw.remove(i); }
                    _ => {
                        // Repeat a short run: stresses boundaries, encoded words and headers.
                        let end = (i + 8).min(raw.len());
                        let run = raw[i..end].to_vec();
                        raw.splice(i..i, run);
                    }
                }
            }
            if let Ok(r) = parse_rfc822(&raw) {
                prop_assert!(r.text.chars().count() <= MAX_TEXT_CHARS);
                prop_assert_eq!(r.from.to_lowercase(), r.from.clone());
                for a in &r.attachments {
                    prop_assert!(!a.name.contains('/') && !a.name.contains('\\'));
                    prop_assert!(!a.name.starts_with('.'));
                    prop_assert!(!a.name.is_empty() && a.name.chars().count() <= MAX_NAME_CHARS);
                    prop_assert!(!a.name.chars().any(char::is_control));
                }
            }
            let cut = cut.index(raw.len() + 1);
            let _ = parse_rfc822(&raw[..cut]);
        }
    }
}
