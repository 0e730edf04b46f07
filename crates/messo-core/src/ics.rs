//! An appointment as an iCalendar file (RFC 5545) the citizen's calendar application can add:
//! one VEVENT, times in UTC, text values escaped and lines folded at 75 octets. Pure: the same
//! appointment gives the same bytes (DTSTAMP is the instant the appointment was recorded).

use std::fmt::Write as _;

use crate::time::Timestamp;

/// What the file asks of the calendar application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Add or update the event (a confirmation or a change).
    Publish,
    /// Remove the event with this UID (a cancellation).
    Cancel,
}

impl Method {
    /// `PUBLISH` or `CANCEL`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Publish => "PUBLISH",
            Method::Cancel => "CANCEL",
        }
    }
}

/// One appointment as a calendar event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Stable for the ticket and the appointment, across changes and the cancellation.
    pub uid: String,
    /// 0 when proposed, one more at each change and at the cancellation.
    pub sequence: u32,
    pub method: Method,
    /// When this version of the appointment was recorded.
    pub stamp: Timestamp,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub summary: String,
    pub location: String,
    pub description: String,
    /// The office's address, written as the organizer (`mailto:`).
    pub organizer: Option<String>,
}

/// The media type of the file, with its method (RFC 6047).
pub fn content_type(method: Method) -> String {
    format!("text/calendar; charset=utf-8; method={}", method.as_str())
}

/// `t` as an iCalendar UTC date-time: `20261208T093000Z`.
pub fn utc(t: Timestamp) -> String {
    let d = t.to_chrono();
    d.format("%Y%m%dT%H%M%SZ").to_string()
}

/// A TEXT value escaped (RFC 5545 §3.3.11): backslash, semicolon, comma and newlines; other
/// control characters are dropped.
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push_str("\\n");
                }
            }
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// One content line folded at 75 octets (RFC 5545 §3.1): each continuation starts with a
/// space, and no UTF-8 character is split. Ends with CRLF.
pub fn fold(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + line.len() / 70 * 3 + 2);
    let mut width = 0;
    for c in line.chars() {
        let n = c.len_utf8();
        if width + n > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += n;
    }
    out.push_str("\r\n");
    out
}

/// The calendar file for `e`.
pub fn render(e: &Event) -> String {
    let mut lines: Vec<String> = vec![
        "BEGIN:VCALENDAR".into(),
        "VERSION:2.0".into(),
        "PRODID:-//Messo//Appuntamenti URP//IT".into(),
        "CALSCALE:GREGORIAN".into(),
        format!("METHOD:{}", e.method.as_str()),
        "BEGIN:VEVENT".into(),
        format!("UID:{}", escape_text(&e.uid)),
        format!("SEQUENCE:{}", e.sequence),
        format!("DTSTAMP:{}", utc(e.stamp)),
        format!("DTSTART:{}", utc(e.starts_at)),
        format!("DTEND:{}", utc(e.ends_at)),
        format!("SUMMARY:{}", escape_text(&e.summary)),
        format!("LOCATION:{}", escape_text(&e.location)),
        format!("DESCRIPTION:{}", escape_text(&e.description)),
        format!(
            "STATUS:{}",
            match e.method {
                Method::Publish => "CONFIRMED",
                Method::Cancel => "CANCELLED",
            }
        ),
        "TRANSP:OPAQUE".into(),
    ];
    if let Some(o) = &e.organizer {
        lines.push(format!("ORGANIZER:mailto:{o}"));
    }
    lines.push("END:VEVENT".into());
    lines.push("END:VCALENDAR".into());
    let mut out = String::new();
    for l in &lines {
        let _ = write!(out, "{}", fold(l));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).expect("instant")
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape_text("Via Roma 1, piano 2; stanza \\3\nsportello\r\nB"),
            "Via Roma 1\\, piano 2\\; stanza \\\\3\\nsportello\\nB"
        );
        assert_eq!(escape_text("a\u{7}b"), "ab");
    }

    #[test]
    fn long_lines_fold_at_75_octets_without_splitting_characters() {
        let line = format!("DESCRIPTION:{}", "è".repeat(60));
        let folded = fold(&line);
        assert!(folded.ends_with("\r\n"));
        let parts: Vec<&str> = folded.trim_end_matches("\r\n").split("\r\n").collect();
        assert!(parts.len() > 1);
        for (i, p) in parts.iter().enumerate() {
            assert!(p.len() <= 75, "line {i} has {} octets", p.len());
            if i > 0 {
                assert!(p.starts_with(' '));
            }
        }
        // Unfolding gives the line back.
        let unfolded: String = parts
            .iter()
            .enumerate()
            .map(|(i, p)| if i == 0 { *p } else { &p[1..] })
            .collect();
        assert_eq!(unfolded, line);
        assert_eq!(fold("SHORT:x"), "SHORT:x\r\n");
    }

    #[test]
    fn an_event_has_its_times_in_utc_and_a_stable_uid() {
        let e = Event {
            uid: "appuntamento-1-2026-000123@comune.example.it".into(),
            sequence: 1,
            method: Method::Publish,
            stamp: ts("2026-12-01T10:00:00+01:00"),
            starts_at: ts("2026-12-09T10:30:00+01:00"),
            ends_at: ts("2026-12-09T11:00:00+01:00"),
            summary: "Appuntamento, richiesta 2026/000123".into(),
            location: "Via Roma 1, Roma".into(),
            description: "Porti un documento".into(),
            organizer: Some("urp@comune.example.it".into()),
        };
        let text = render(&e);
        assert!(text.contains("\r\nDTSTART:20261209T093000Z\r\n"), "{text}");
        assert!(text.contains("\r\nDTEND:20261209T100000Z\r\n"));
        assert!(text.contains("\r\nSEQUENCE:1\r\n"));
        assert!(text.contains("\r\nLOCATION:Via Roma 1\\, Roma\r\n"));
        assert!(text.contains("\r\nMETHOD:PUBLISH\r\n"));
        assert!(text.ends_with("END:VCALENDAR\r\n"));
        let cancel = render(&Event {
            method: Method::Cancel,
            ..e
        });
        assert!(cancel.contains("\r\nMETHOD:CANCEL\r\n") && cancel.contains("STATUS:CANCELLED"));
        assert_eq!(
            content_type(Method::Cancel),
            "text/calendar; charset=utf-8; method=CANCEL"
        );
    }
}
