//! `messo sla batch`: JSON Lines in, one JSON line out per line in, as `sla-spec.md` defines.
//!
//! Lines are parsed into a small borrowed JSON tree (strings are not copied unless they hold
//! escapes), validated field by field with messages that name the field, and answered by the
//! SLA clock. A bad line gets an error line and never stops the batch.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, BufRead, Write};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::domain::{Category, Priority};
use crate::sla::{Sla, SlaStatus, Suspension, normalize_suspensions};
use crate::time::{Timestamp, write_rfc3339};

/// A JSON value that borrows its strings from the input line where it can.
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Number,
    Str(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number => "a number",
            Json::Str(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }

    /// The value of `key` in an object (the last one if the key is repeated).
    fn get(&self, key: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(fields) => fields.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Json<'de>, E> {
        Ok(Json::Number)
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut fields = Vec::with_capacity(8);
        while let Some(k) = map.next_key::<Key<'de>>()? {
            let v = map.next_value()?;
            fields.push((k.0, v));
        }
        Ok(Json::Object(fields))
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// One valid input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    pub id: Option<Cow<'a, str>>,
    pub received_at: Timestamp,
    pub category: Category,
    pub priority: Priority,
    /// As given (not yet clipped or merged).
    pub suspensions: Vec<Suspension>,
    pub now: Timestamp,
}

/// A line refused, with the id to echo (when it was a string) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub id: Option<String>,
    pub message: String,
}

fn field_str<'v>(obj: &'v Json<'_>, key: &str, required: bool) -> Result<Option<&'v str>, String> {
    match obj.get(key) {
        None if required => Err(format!("missing required field \"{key}\"")),
        None | Some(Json::Null) if !required => Ok(None),
        Some(Json::Str(s)) => Ok(Some(s)),
        Some(other) => Err(format!(
            "\"{key}\" must be a string, found {}",
            other.kind()
        )),
        None => Err(format!("missing required field \"{key}\"")),
    }
}

fn field_time(obj: &Json<'_>, key: &str) -> Result<Timestamp, String> {
    match field_str(obj, key, true)? {
        Some(text) => Timestamp::parse_rfc3339(text).map_err(|e| format!("\"{key}\": {e}")),
        None => Err(format!("\"{key}\" must be a string, found null")),
    }
}

fn parse_suspensions(obj: &Json<'_>, out: &mut Vec<Suspension>) -> Result<(), String> {
    let items = match obj.get("suspensions") {
        None | Some(Json::Null) => return Ok(()),
        Some(Json::Array(items)) => items,
        Some(other) => {
            return Err(format!(
                "\"suspensions\" must be an array, found {}",
                other.kind()
            ));
        }
    };
    for (i, item) in items.iter().enumerate() {
        if !matches!(item, Json::Object(_)) {
            return Err(format!(
                "suspensions[{i}] must be an object with \"from\" and \"to\", found {}",
                item.kind()
            ));
        }
        let from = match item.get("from") {
            Some(Json::Str(s)) => {
                Timestamp::parse_rfc3339(s).map_err(|e| format!("suspensions[{i}].from: {e}"))?
            }
            Some(other) => {
                return Err(format!(
                    "suspensions[{i}].from must be a string, found {}",
                    other.kind()
                ));
            }
            None => return Err(format!("suspensions[{i}]: missing \"from\"")),
        };
        let to = match item.get("to") {
            Some(Json::Null) => None,
            Some(Json::Str(s)) => {
                Some(Timestamp::parse_rfc3339(s).map_err(|e| format!("suspensions[{i}].to: {e}"))?)
            }
            Some(other) => {
                return Err(format!(
                    "suspensions[{i}].to must be a string or null, found {}",
                    other.kind()
                ));
            }
            None => {
                return Err(format!(
                    "suspensions[{i}]: missing \"to\" (use null while the suspension is open)"
                ));
            }
        };
        let s = Suspension::new(from, to).map_err(|e| format!("suspensions[{i}]: {e}"))?;
        out.push(s);
    }
    Ok(())
}

/// Validates a parsed line. `scratch` receives the suspensions and is reused between lines.
fn validate<'a>(value: &Json<'a>, scratch: &mut Vec<Suspension>) -> Result<Line<'a>, LineError> {
    let id = match value.get("id") {
        Some(Json::Str(s)) => Some(s.clone()),
        _ => None,
    };
    let fail = |message: String| LineError {
        id: id.as_ref().map(|s| s.to_string()),
        message,
    };
    if !matches!(value, Json::Object(_)) {
        return Err(fail(format!(
            "a line must be a JSON object, found {}",
            value.kind()
        )));
    }
    if let Some(other) = value.get("id")
        && !matches!(other, Json::Str(_))
    {
        return Err(fail(format!(
            "\"id\" must be a string, found {}",
            other.kind()
        )));
    }
    let received_at = field_time(value, "received_at").map_err(fail)?;
    let priority = match field_str(value, "priority", true).map_err(fail)? {
        Some(p) => p
            .parse::<Priority>()
            .map_err(|e| fail(format!("\"priority\": {e}")))?,
        None => return Err(fail("\"priority\" must be a string, found null".to_owned())),
    };
    let category = match field_str(value, "category", false).map_err(fail)? {
        Some(c) => c
            .parse::<Category>()
            .map_err(|e| fail(format!("\"category\": {e}")))?,
        None => Category::Generale,
    };
    let now = field_time(value, "now").map_err(fail)?;
    scratch.clear();
    parse_suspensions(value, scratch).map_err(fail)?;
    Ok(Line {
        id,
        received_at,
        category,
        priority,
        suspensions: std::mem::take(scratch),
        now,
    })
}

/// Parses and validates one raw line (without its `\n`; a trailing `\r` is ignored).
pub fn parse_line<'a>(raw: &'a [u8]) -> Result<Line<'a>, LineError> {
    let mut scratch = Vec::new();
    parse_line_with(raw, &mut scratch)
}

fn parse_line_with<'a>(
    raw: &'a [u8],
    scratch: &mut Vec<Suspension>,
) -> Result<Line<'a>, LineError> {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let bare = |message: &str| LineError {
        id: None,
        message: message.to_owned(),
    };
    let Ok(text) = std::str::from_utf8(raw) else {
        return Err(bare("line is not valid UTF-8"));
    };
    if text.trim().is_empty() {
        return Err(bare("empty line; expected a JSON object"));
    }
    let value: Json<'a> = serde_json::from_str(text).map_err(|e| LineError {
        id: None,
        message: format!("not valid JSON: {e}"),
    })?;
    validate(&value, scratch)
}

/// Writes `{"id":…,"error":"…"}`.
fn write_error(out: &mut Vec<u8>, err: &LineError) {
    out.extend_from_slice(b"{\"id\":");
    write_json_str_or_null(out, err.id.as_deref());
    out.extend_from_slice(b",\"error\":");
    write_json_str_or_null(out, Some(&err.message));
    out.extend_from_slice(b"}\n");
}

fn write_json_str_or_null(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.extend_from_slice(b"null"),
        Some(s) => {
            // Serializing a str into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, s);
        }
    }
}

fn write_i64(out: &mut Vec<u8>, v: i64) {
    let mut buf = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

/// Writes the answer line for a valid input.
fn write_status(sla: &Sla, out: &mut Vec<u8>, id: Option<&str>, s: &SlaStatus, text: &mut String) {
    out.extend_from_slice(b"{\"id\":");
    write_json_str_or_null(out, id);
    out.extend_from_slice(b",\"due_at\":");
    match s.due_at {
        Some(d) => {
            text.clear();
            write_rfc3339(text, d, sla.calendar.offset_at(d));
            out.push(b'"');
            out.extend_from_slice(text.as_bytes());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"state\":\"");
    out.extend_from_slice(s.state.as_str().as_bytes());
    out.extend_from_slice(b"\",\"elapsed_s\":");
    write_i64(out, s.elapsed_s);
    out.extend_from_slice(b",\"target_s\":");
    write_i64(out, s.target_s);
    out.extend_from_slice(b",\"remaining_s\":");
    write_i64(out, s.remaining_s);
    out.extend_from_slice(b"}\n");
}

/// Answers lines one by one, reusing its buffers.
pub struct BatchProcessor<'s> {
    sla: &'s Sla,
    scratch: Vec<Suspension>,
    text: String,
}

impl<'s> BatchProcessor<'s> {
    /// A processor over the given calendar and policy.
    pub fn new(sla: &'s Sla) -> BatchProcessor<'s> {
        BatchProcessor {
            sla,
            scratch: Vec::with_capacity(8),
            text: String::with_capacity(32),
        }
    }

    /// Appends the answer to one raw input line (with or without a trailing `\r`, without `\n`)
    /// to `out`, newline included.
    pub fn answer(&mut self, raw: &[u8], out: &mut Vec<u8>) {
        match parse_line_with(raw, &mut self.scratch) {
            Err(e) => write_error(out, &e),
            Ok(mut line) => {
                normalize_suspensions(line.received_at, &mut line.suspensions);
                let result = self.sla.status_normalized(
                    line.received_at,
                    line.category,
                    line.priority,
                    &line.suspensions,
                    line.now,
                );
                match result {
                    Ok(status) => {
                        write_status(self.sla, out, line.id.as_deref(), &status, &mut self.text)
                    }
                    Err(e) => write_error(
                        out,
                        &LineError {
                            id: line.id.map(Cow::into_owned),
                            message: e.to_string(),
                        },
                    ),
                }
                // Give the suspension buffer back for the next line.
                self.scratch = line.suspensions;
            }
        }
    }
}

/// Counts of what a batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchSummary {
    pub lines: u64,
}

/// Reads JSON Lines from `input` until its end and writes one answer line per input line to
/// `output`. Only I/O failures end the batch early.
pub fn run<R: BufRead, W: Write>(
    sla: &Sla,
    mut input: R,
    mut output: W,
) -> io::Result<BatchSummary> {
    let mut proc = BatchProcessor::new(sla);
    let mut line = Vec::with_capacity(512);
    let mut out = Vec::with_capacity(64 * 1024);
    let mut summary = BatchSummary::default();
    loop {
        line.clear();
        let n = input.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        let raw = line.strip_suffix(b"\n").unwrap_or(&line);
        proc.answer(raw, &mut out);
        summary.lines += 1;
        if out.len() >= 60 * 1024 {
            output.write_all(&out)?;
            out.clear();
        }
    }
    output.write_all(&out)?;
    output.flush()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::{Calendar, CalendarSpec};
    use crate::sla::Policy;

    fn sla() -> Sla {
        Sla::new(
            Calendar::new(CalendarSpec::roma_capitale()).unwrap(),
            Policy::agreement_default(),
        )
    }

    fn answer(input: &str) -> String {
        let mut out = Vec::new();
        run(&sla(), input.as_bytes(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn answers_the_spec_example_byte_for_byte() {
        let input = r#"{"id":"T-1","received_at":"2026-03-02T10:15:00+01:00","priority":"urgente","category":"generale","suspensions":[{"from":"2026-03-02T11:00:00+01:00","to":"2026-03-04T09:30:00+01:00"}],"now":"2026-03-05T12:00:00+01:00"}"#;
        assert_eq!(
            answer(&format!("{input}\n")),
            "{\"id\":\"T-1\",\"due_at\":\"2026-03-04T16:45:00+01:00\",\"state\":\"breached\",\"elapsed_s\":40500,\"target_s\":28800,\"remaining_s\":0}\n"
        );
    }

    #[test]
    fn line_splitting_follows_the_contract() {
        let ok = r#"{"id":"a","received_at":"2026-03-02T10:15:00+01:00","priority":"alta","now":"2026-03-02T10:15:00+01:00"}"#;
        // No final newline: the last line still counts. CRLF: the \r is ignored.
        let out = answer(&format!("{ok}\r\n\n{ok}"));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("{\"id\":\"a\",\"due_at\":"));
        assert_eq!(
            lines[1],
            "{\"id\":null,\"error\":\"empty line; expected a JSON object\"}"
        );
        assert_eq!(lines[0], lines[2]);
        // A final newline does not start a line; empty input gives nothing.
        assert_eq!(answer(&format!("{ok}\n")).lines().count(), 1);
        assert_eq!(answer(""), "");
    }

    #[test]
    fn invalid_utf8_gets_an_error_line_and_the_batch_goes_on() {
        let mut input = b"{\"id\":\"\xff\"}\n".to_vec();
        input.extend_from_slice(br#"{"id":"b","received_at":"2026-03-02T10:15:00+01:00","priority":"alta","now":"2026-03-02T10:15:00+01:00"}"#);
        let mut out = Vec::new();
        run(&sla(), &input[..], &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "{\"id\":null,\"error\":\"line is not valid UTF-8\"}"
        );
        assert!(lines[1].starts_with("{\"id\":\"b\",\"due_at\""));
    }

    #[test]
    fn errors_name_the_field_and_echo_string_ids() {
        let cases = [
            (
                r#"{"id":"x","received_at":"2026-03-02T10:15:00+01:00","priority":"Urgent","now":"2026-03-02T10:15:00+01:00"}"#,
                "{\"id\":\"x\",\"error\":\"\\\"priority\\\": unknown priority \\\"Urgent\\\"; expected urgente|alta|normale|bassa\"}",
            ),
            (
                r#"{"id":7,"received_at":"2026-03-02T10:15:00+01:00","priority":"alta","now":"2026-03-02T10:15:00+01:00"}"#,
                "{\"id\":null,\"error\":\"\\\"id\\\" must be a string, found a number\"}",
            ),
            (
                r#"{"id":"y","received_at":"2026-03-02T10:15:00+01:00","priority":"alta","now":"2026-03-02T10:15:00+01:00","suspensions":[{"from":"2026-03-02T11:00:00+01:00"}]}"#,
                "{\"id\":\"y\",\"error\":\"suspensions[0]: missing \\\"to\\\" (use null while the suspension is open)\"}",
            ),
            (
                r#"["not","an","object"]"#,
                "{\"id\":null,\"error\":\"a line must be a JSON object, found an array\"}",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(answer(input).trim_end(), expected, "{input}");
        }
        let missing = answer(r#"{"id":"z","priority":"alta","now":"2026-03-02T10:15:00+01:00"}"#);
        assert!(
            missing.contains("missing required field \\\"received_at\\\""),
            "{missing}"
        );
        let escaped = answer("{\"id\":\"q\\\"1\",\"priority\":\"alta\"}");
        assert!(
            escaped.starts_with("{\"id\":\"q\\\"1\",\"error\""),
            "{escaped}"
        );
    }
}
