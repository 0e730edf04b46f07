//! Tickets as the CRM describes them, and their events: parsed and validated here, once, for the
//! REST API and for direct writes alike; and the pure rules that turn a ticket's event history
//! into the facts the SLA clock needs.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub mod record;

use crate::domain::{Address, Category, Lang, Priority, ReceivedVia};
use crate::sla::Suspension;
use crate::time::Timestamp;

/// A field of a request that is wrong, named the way the client wrote it (`citizen.mobile`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn field_err(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// The CRM's ticket number: 1–64 characters of letters, digits and `. _ / -`, starting with a
/// letter or digit (`2026/000123`, `URP-2026-77`). In URLs a `/` is written `%2F`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TicketNumber(String);

/// Why a text is not a ticket number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketNumberError {
    /// Empty, or longer than 64 bytes (the length found).
    #[error("must be 1–64 characters, found {0}")]
    Length(usize),
    #[error("{0:?} may hold only letters, digits and . _ / -, starting with a letter or digit")]
    Characters(String),
}

impl TicketNumber {
    /// Validates a ticket number.
    pub fn parse(s: &str) -> Result<TicketNumber, TicketNumberError> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-');
        if s.is_empty() || s.len() > 64 {
            return Err(TicketNumberError::Length(s.len()));
        }
        if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) || !s.chars().all(ok_char) {
            return Err(TicketNumberError::Characters(s.to_owned()));
        }
        Ok(TicketNumber(s.to_owned()))
    }

    /// The number as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TicketNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub use crate::domain::Channel;

/// How to reach the citizen. At least one address; the preferred channel must have one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Citizen {
    pub email: Option<String>,
    /// E.164, e.g. `+393471234567`.
    pub mobile: Option<String>,
    pub pec: Option<String>,
    pub fiscal_code: Option<String>,
    pub language: String,
    pub preferred_channel: Channel,
    pub opt_out: Vec<Channel>,
    /// The citizen's digital domicile (a PEC address elected in INAD), when Messo looked it up:
    /// set by the store from its cache, never taken from the CRM (CAD art. 3-bis).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domicile: Option<String>,
}

impl Default for Citizen {
    /// No address at all: Italian, e-mail preferred.
    fn default() -> Citizen {
        Citizen {
            email: None,
            mobile: None,
            pec: None,
            fiscal_code: None,
            language: "it".to_owned(),
            preferred_channel: Channel::Email,
            opt_out: Vec::new(),
            domicile: None,
        }
    }
}

impl Citizen {
    /// The citizen's address on `channel`, when there is one.
    pub fn address(&self, channel: Channel) -> Option<&str> {
        match channel {
            Channel::Email => self.email.as_deref(),
            // A call goes to the mobile the SMS went to.
            Channel::Sms | Channel::Voice => self.mobile.as_deref(),
            Channel::Pec => self.pec.as_deref(),
            Channel::Io => self.fiscal_code.as_deref(),
        }
    }

    /// Whether the citizen asked not to be written to on `channel`.
    pub fn opted_out(&self, channel: Channel) -> bool {
        self.opt_out.contains(&channel)
    }

    /// The citizen's language (Italian when unknown).
    pub fn lang(&self) -> Lang {
        self.language.parse().unwrap_or_default()
    }

    /// The citizen's address on `channel`, parsed: none when there is none, or when what is
    /// stored is not an address the channel takes (every address is checked when a ticket is
    /// received, by the same rules).
    pub fn reach(&self, channel: Channel) -> Option<Address> {
        Address::parse(channel, self.address(channel)?).ok()
    }

    /// Where the citizen's notices go: the preferred channel, then the others in a fixed order,
    /// skipping channels opted out of or without an address.
    pub fn route(&self) -> Option<(Channel, Address)> {
        let order = match self.preferred_channel {
            Channel::Sms | Channel::Voice | Channel::Io => {
                [Channel::Sms, Channel::Email, Channel::Pec]
            }
            Channel::Pec => [Channel::Pec, Channel::Email, Channel::Sms],
            Channel::Email => [Channel::Email, Channel::Pec, Channel::Sms],
        };
        order
            .into_iter()
            .filter(|c| !self.opted_out(*c))
            .find_map(|c| self.reach(c).map(|a| (c, a)))
    }
}

pub use crate::domain::email::email_problem;

/// Normalizes a phone number to E.164 with the `phonenumber` metadata: `+39 347 123 4567`,
/// `0039 347…` and `347 123 4567` all give `+393471234567`. Whether it can take an SMS is
/// checked when one is sent (a landline is refused then, with the reason).
pub fn normalize_e164(s: &str) -> Option<String> {
    // Italian national forms (`347 123 4567`, `0039…`) are read as Italian numbers.
    crate::domain::phone::normalize_number(s, false).ok()
}

/// Checks an Italian codice fiscale: 16 characters in its pattern (omocodia letters allowed in
/// the digit places) with a correct check character. Returns it upper-cased.
pub fn normalize_fiscal_code(s: &str) -> Option<String> {
    crate::domain::FiscalCode::parse(s)
        .ok()
        .map(|c| c.as_str().to_owned())
}

/// A new ticket as the CRM sends it (`POST /api/v1/tickets` or a `crm_inbox` row of kind
/// `ticket`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTicket {
    pub number: TicketNumber,
    pub office: String,
    pub category: Category,
    pub priority: Priority,
    pub subject: String,
    pub received_at: Timestamp,
    pub citizen: Citizen,
    /// First processing step, if the CRM gives one.
    pub step: Option<(String, String)>,
    /// How the request reached the office, if the CRM says.
    pub received_via: Option<ReceivedVia>,
}

/// Reads fields out of a JSON object, collecting every problem with its path.
struct Fields<'a> {
    obj: &'a serde_json::Map<String, Value>,
    prefix: &'a str,
    errors: Vec<FieldError>,
    known: &'a [&'a str],
}

impl<'a> Fields<'a> {
    fn new(
        value: &'a Value,
        prefix: &'a str,
        known: &'a [&'a str],
    ) -> Result<Fields<'a>, FieldError> {
        match value {
            Value::Object(obj) => {
                let mut f = Fields {
                    obj,
                    prefix,
                    errors: Vec::new(),
                    known,
                };
                for k in obj.keys() {
                    if !known.contains(&k.as_str()) {
                        let path = f.path(k);
                        f.errors.push(field_err(
                            path,
                            format!("unknown field; expected one of {}", known.join(", ")),
                        ));
                    }
                }
                Ok(f)
            }
            other => Err(field_err(
                if prefix.is_empty() { "(body)" } else { prefix },
                format!("must be a JSON object, found {}", kind(other)),
            )),
        }
    }

    fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    fn fail(&mut self, key: &str, message: impl Into<String>) {
        let path = self.path(key);
        self.errors.push(field_err(path, message));
    }

    fn opt_str(&mut self, key: &str) -> Option<&'a str> {
        debug_assert!(self.known.contains(&key));
        match self.obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(other) => {
                self.fail(key, format!("must be a string, found {}", kind(other)));
                None
            }
        }
    }

    fn str(&mut self, key: &str) -> Option<&'a str> {
        let present = matches!(self.obj.get(key), Some(v) if !v.is_null());
        let v = self.opt_str(key);
        if !present {
            self.fail(key, "is required");
        }
        v
    }

    /// A required non-empty text of at most `max` characters, trimmed.
    fn text(&mut self, key: &str, max: usize) -> Option<String> {
        let s = self.str(key)?.trim();
        if s.is_empty() {
            self.fail(key, "must not be empty");
            return None;
        }
        if s.chars().count() > max {
            self.fail(key, format!("must be at most {max} characters"));
            return None;
        }
        Some(s.to_owned())
    }

    fn time(&mut self, key: &str) -> Option<Timestamp> {
        let s = self.str(key)?;
        match Timestamp::parse_rfc3339(s) {
            Ok(t) => Some(t),
            Err(e) => {
                self.fail(key, e.to_string());
                None
            }
        }
    }

    fn parsed<T: std::str::FromStr>(&mut self, key: &str) -> Option<T>
    where
        T::Err: fmt::Display,
    {
        let s = self.str(key)?;
        match s.parse::<T>() {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(key, e.to_string());
                None
            }
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse_citizen(value: Option<&Value>, errors: &mut Vec<FieldError>) -> Option<Citizen> {
    let Some(value) = value else {
        errors.push(field_err("citizen", "is required"));
        return None;
    };
    let known = [
        "email",
        "mobile",
        "pec",
        "fiscal_code",
        "language",
        "preferred_channel",
        "opt_out",
    ];
    let mut f = match Fields::new(value, "citizen", &known) {
        Ok(f) => f,
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let email = citizen_email(&mut f, "email");
    let pec = citizen_email(&mut f, "pec");
    let mobile = citizen_mobile(&mut f);
    let fiscal_code = citizen_fiscal_code(&mut f);
    let language = citizen_language(&mut f);
    let has = |c: Channel| match c {
        Channel::Email => email.is_some(),
        Channel::Sms => mobile.is_some(),
        Channel::Pec => pec.is_some(),
        Channel::Voice | Channel::Io => false,
    };
    let preferred_channel = citizen_preferred_channel(&mut f, has);
    let opt_out = citizen_opt_out(&mut f);
    if email.is_none() && mobile.is_none() && pec.is_none() {
        f.fail("email", "give at least one of email, mobile or pec");
    }
    if let Some(p) = preferred_channel
        && !has(p)
        && f.errors.is_empty()
    {
        f.fail(
            "preferred_channel",
            format!("{p:?} is preferred but no address for it is given").to_lowercase(),
        );
    }
    let ok = f.errors.is_empty();
    errors.append(&mut f.errors);
    if !ok {
        return None;
    }
    Some(Citizen {
        email,
        mobile,
        pec,
        fiscal_code,
        language,
        preferred_channel: preferred_channel?,
        opt_out,
        domicile: None,
    })
}

/// An e-mail or PEC address, trimmed.
fn citizen_email(f: &mut Fields<'_>, key: &str) -> Option<String> {
    let address = f.opt_str(key).map(str::trim).map(str::to_owned);
    if let Some(why) = address.as_deref().and_then(email_problem) {
        f.fail(key, why);
    }
    address
}

/// The mobile number, in E.164.
fn citizen_mobile(f: &mut Fields<'_>) -> Option<String> {
    let m = f.opt_str("mobile")?;
    let n = normalize_e164(m);
    if n.is_none() {
        f.fail(
            "mobile",
            "is not a phone number; write it like +393471234567 or 347 123 4567",
        );
    }
    n
}

/// The codice fiscale, upper-cased.
fn citizen_fiscal_code(f: &mut Fields<'_>) -> Option<String> {
    let cf = normalize_fiscal_code(f.opt_str("fiscal_code")?);
    if cf.is_none() {
        f.fail(
            "fiscal_code",
            "is not a valid codice fiscale (16 characters with a correct check letter)",
        );
    }
    cf
}

/// The language, `it` when absent (and after a problem).
fn citizen_language(f: &mut Fields<'_>) -> String {
    match f.opt_str("language").unwrap_or("it") {
        l if l.parse::<Lang>().is_ok() => l.to_owned(),
        other => {
            f.fail(
                "language",
                format!("unknown language {other:?}; expected it|en"),
            );
            "it".to_owned()
        }
    }
}

/// The preferred channel as given; else the first of e-mail, SMS, PEC the citizen `has`.
fn citizen_preferred_channel(f: &mut Fields<'_>, has: impl Fn(Channel) -> bool) -> Option<Channel> {
    match f.opt_str("preferred_channel") {
        Some(p) => Channel::parse(p)
            .filter(|c| !matches!(c, Channel::Voice | Channel::Io))
            .or_else(|| {
                f.fail(
                    "preferred_channel",
                    format!("unknown channel {p:?}; expected email|sms|pec"),
                );
                None
            }),
        None => [Channel::Email, Channel::Sms, Channel::Pec]
            .into_iter()
            .find(|c| has(*c)),
    }
}

/// The channels the citizen opted out of, each once.
fn citizen_opt_out(f: &mut Fields<'_>) -> Vec<Channel> {
    let mut opt_out = Vec::new();
    match f.obj.get("opt_out") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item.as_str().and_then(Channel::parse) {
                    Some(c) if !opt_out.contains(&c) => opt_out.push(c),
                    Some(_) => {}
                    None => f.fail(
                        &format!("opt_out[{i}]"),
                        "must be one of email, sms, pec, io",
                    ),
                }
            }
        }
        Some(other) => f.fail(
            "opt_out",
            format!("must be an array of channels, found {}", kind(other)),
        ),
    }
    opt_out
}

impl NewTicket {
    /// Validates a ticket body. Every problem is reported, each with its field.
    pub fn from_json(value: &Value) -> Result<NewTicket, Vec<FieldError>> {
        let known = [
            "number",
            "office",
            "category",
            "priority",
            "subject",
            "received_at",
            "citizen",
            "step",
            "received_via",
        ];
        let mut f = Fields::new(value, "", &known).map_err(|e| vec![e])?;
        let number = f.str("number").and_then(|n| {
            TicketNumber::parse(n)
                .map_err(|e| f.fail("number", e.to_string()))
                .ok()
        });
        let office = f.text("office", 100);
        let category = match f.opt_str("category") {
            None => Some(Category::Generale),
            Some(_) => f.parsed::<Category>("category"),
        };
        let priority = f.parsed::<Priority>("priority");
        let subject = f.text("subject", 500);
        let received_at = f.time("received_at");
        let received_via = match f.opt_str("received_via") {
            None => None,
            Some(_) => f.parsed::<ReceivedVia>("received_via"),
        };
        let step = match f.obj.get("step") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let known = ["code", "text"];
                match Fields::new(v, "step", &known) {
                    Ok(mut s) => {
                        let code = s.text("code", 100);
                        let text = s.text("text", 1000);
                        f.errors.append(&mut s.errors);
                        code.zip(text)
                    }
                    Err(e) => {
                        f.errors.push(e);
                        None
                    }
                }
            }
        };
        let mut errors = std::mem::take(&mut f.errors);
        let citizen = parse_citizen(f.obj.get("citizen"), &mut errors);
        match (
            number,
            office,
            category,
            priority,
            subject,
            received_at,
            citizen,
        ) {
            (
                Some(number),
                Some(office),
                Some(category),
                Some(priority),
                Some(subject),
                Some(received_at),
                Some(citizen),
            ) if errors.is_empty() => Ok(NewTicket {
                number,
                office,
                category,
                priority,
                subject,
                received_at,
                citizen,
                step,
                received_via,
            }),
            _ => Err(errors),
        }
    }

    /// A ticket as its stored `received` event keeps it: as [`NewTicket::from_json`], and a
    /// citizen whose contacts the personal-data lifecycle removed (`{"erased": true,
    /// "language": …}`, see [`erased_citizen`]) is read as a citizen with no address.
    pub fn from_stored_json(value: &Value) -> Result<NewTicket, Vec<FieldError>> {
        let Some(citizen) = value.get("citizen").filter(|c| is_erased(c)) else {
            return NewTicket::from_json(value);
        };
        let language = citizen.get("language").cloned().unwrap_or(Value::Null);
        let mut stand_in = value.clone();
        // Any valid address lets the rest be checked as always; it is dropped at once.
        stand_in["citizen"] = serde_json::json!({"email": "erased@example.invalid"});
        if language.is_string() {
            stand_in["citizen"]["language"] = language;
        }
        let mut t = NewTicket::from_json(&stand_in)?;
        t.citizen = Citizen {
            language: t.citizen.language,
            ..Citizen::default()
        };
        Ok(t)
    }

    /// The ticket in the shape a client sends it, normalized (`received_at` in UTC): what the
    /// received event keeps, and what [`NewTicket::from_json`] reads back.
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::json!({
            "number": self.number.as_str(),
            "office": self.office,
            "category": self.category.as_str(),
            "priority": self.priority.as_str(),
            "subject": self.subject,
            "received_at": self.received_at.to_string(),
            "citizen": serde_json::to_value(&self.citizen).unwrap_or(Value::Null),
            "step": self.step.as_ref().map(|(code, text)| serde_json::json!({"code": code, "text": text})),
        });
        // Only when given, so a ticket without it hashes as it did before the field existed.
        if let (Some(via), Some(obj)) = (self.received_via, v.as_object_mut()) {
            obj.insert("received_via".to_owned(), Value::from(via.as_str()));
        }
        v
    }

    /// A hash of the validated content: the same ticket sent twice hashes the same, whatever
    /// the key order, spacing or offset of the JSON.
    pub fn content_hash(&self) -> String {
        hash_json(&self.to_json())
    }
}

/// What the personal-data lifecycle leaves of a citizen's JSON: the mark `erased` and the
/// language (the reports and the ticket's replay need nothing else).
pub fn erased_citizen(citizen: &Value) -> Value {
    let language = citizen
        .get("language")
        .and_then(Value::as_str)
        .unwrap_or("it");
    serde_json::json!({"erased": true, "language": language})
}

/// Whether a citizen's JSON is one [`erased_citizen`] made.
pub fn is_erased(citizen: &Value) -> bool {
    citizen.get("erased").and_then(Value::as_bool) == Some(true)
}

/// A stored event's data without the citizen's personal data: the `received` event's citizen
/// erased, a contact correction's addresses removed, the citizen's reply text dropped. `None`
/// when the event holds none (every other kind keeps the office's own words). What is left
/// still replays to the same SLA facts.
pub fn erased_event_data(kind: &str, data: &Value) -> Option<Value> {
    let mut v = data.clone();
    match kind {
        "received" => {
            let citizen = v.get("ticket")?.get("citizen")?;
            if is_erased(citizen) {
                return None;
            }
            v["ticket"]["citizen"] = erased_citizen(citizen);
        }
        "contact_changed" => {
            let obj = v.as_object_mut()?;
            if obj.get("erased").and_then(Value::as_bool) == Some(true) {
                return None;
            }
            for k in ["email", "mobile", "pec"] {
                obj.remove(k);
            }
            obj.insert("erased".to_owned(), Value::Bool(true));
        }
        "integration_received" => {
            let obj = v.as_object_mut()?;
            if obj.get("text").is_none_or(Value::is_null) {
                return None;
            }
            obj.insert("text".to_owned(), Value::Null);
        }
        _ => return None,
    }
    Some(v)
}

/// SHA-256 (hex) of a JSON value's compact serialization with sorted keys.
pub fn hash_json(v: &Value) -> String {
    // serde_json's map keeps keys sorted (no preserve_order feature), so this is canonical.
    let text = v.to_string();
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(digest)
}

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Api,
    Crm,
    Webhook,
    System,
    /// The URP's staff, from the console (a step, an integration request, a closure, a note, a
    /// contact made or corrected).
    Console,
}

impl Source {
    /// `api`, `crm`, `webhook`, `system` or `console`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Crm => "crm",
            Source::Webhook => "webhook",
            Source::System => "system",
            Source::Console => "console",
        }
    }
}

/// What happened to a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    /// The ticket arrived (recorded by Messo when the ticket is created).
    Received,
    /// A processing step, with the text the citizen should read.
    StepChanged {
        step: String,
        text: String,
    },
    /// The office needs documents or information from the citizen: the clock stops.
    IntegrationRequested {
        missing: String,
    },
    /// The citizen answered: the clock resumes.
    IntegrationReceived {
        channel: String,
        text: Option<String>,
    },
    PriorityChanged {
        priority: Priority,
    },
    CategoryChanged {
        category: Category,
    },
    Closed {
        text: Option<String>,
    },
    Reopened {
        reason: String,
    },
    Note {
        text: String,
    },
    /// The ticket was moved to the current policy and calendar on purpose.
    Rebaselined {
        policy_version: i64,
        calendar_version: i64,
        reason: String,
    },
    /// The office reached the citizen outside the messages (by phone, at the desk), after a
    /// notice could not be delivered. Recorded from the console; owes nothing.
    ContactMade {
        channel: String,
        text: String,
    },
    /// The office tells the citizen a new expected date of closure (after a breach, or when the
    /// work will take longer): the date the citizen is told from now on. The SLA term, which
    /// measures compliance, does not move.
    ExpectedDateSet {
        #[serde(serialize_with = "rfc3339")]
        expected_at: Timestamp,
        reason: String,
    },
    /// The office corrected the citizen's contacts (the addresses given replace those on file).
    /// Recorded from the console; owes nothing itself (the console queues again what never
    /// arrived).
    ContactChanged {
        #[serde(skip_serializing_if = "Option::is_none")]
        email: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        mobile: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pec: Option<String>,
        reason: String,
    },
    /// An on-site appointment offered to the citizen (in_loco tickets only): inside one office
    /// window, not in the past, by the term unless a reason is given.
    AppointmentProposed {
        #[serde(serialize_with = "rfc3339")]
        starts_at: Timestamp,
        minutes: u32,
        place: String,
        officer: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The current appointment moved (another date, place or officer).
    AppointmentChanged {
        #[serde(serialize_with = "rfc3339")]
        starts_at: Timestamp,
        minutes: u32,
        place: String,
        officer: String,
        reason: String,
    },
    /// The current appointment will not take place.
    AppointmentCancelled {
        reason: String,
    },
    /// The visit took place: the on-site term is met and the ticket is closed.
    AppointmentHeld {
        text: Option<String>,
    },
    /// The citizen did not come.
    AppointmentMissed {
        reason: Option<String>,
    },
}

/// An instant written as RFC 3339 in UTC, as clients send it and [`Fields::time`] reads it.
fn rfc3339<S: serde::Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_string())
}

impl EventBody {
    /// The stored kind name.
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::Received => "received",
            EventBody::StepChanged { .. } => "step_changed",
            EventBody::IntegrationRequested { .. } => "integration_requested",
            EventBody::IntegrationReceived { .. } => "integration_received",
            EventBody::PriorityChanged { .. } => "priority_changed",
            EventBody::CategoryChanged { .. } => "category_changed",
            EventBody::Closed { .. } => "closed",
            EventBody::Reopened { .. } => "reopened",
            EventBody::Note { .. } => "note",
            EventBody::Rebaselined { .. } => "rebaselined",
            EventBody::ContactMade { .. } => "contact_made",
            EventBody::ContactChanged { .. } => "contact_changed",
            EventBody::ExpectedDateSet { .. } => "expected_date_set",
            EventBody::AppointmentProposed { .. } => "appointment_proposed",
            EventBody::AppointmentChanged { .. } => "appointment_changed",
            EventBody::AppointmentCancelled { .. } => "appointment_cancelled",
            EventBody::AppointmentHeld { .. } => "appointment_held",
            EventBody::AppointmentMissed { .. } => "appointment_missed",
        }
    }
}

/// Channels an integration reply may come through.
pub const REPLY_CHANNELS: &[&str] = &["email", "sms", "pec", "phone", "portal", "desk", "post"];

/// How the office may reach a citizen outside the messages (`contact_made`).
pub const CONTACT_CHANNELS: &[&str] = &["phone", "desk"];

/// Validates a correction of the citizen's contacts (`{email?, mobile?, pec?, reason}`): each
/// address as the ticket's `citizen` takes it (the mobile normalised to E.164), at least one
/// given, and the reason. The answer is a `contact_changed` body.
pub fn contact_change(value: &Value) -> Result<EventBody, Vec<FieldError>> {
    let mut f =
        Fields::new(value, "", &["email", "mobile", "pec", "reason"]).map_err(|e| vec![e])?;
    let body = contact_changed(&mut f);
    match body {
        Some(b) if f.errors.is_empty() => Ok(b),
        _ => Err(f.errors),
    }
}

fn contact_changed(f: &mut Fields<'_>) -> Option<EventBody> {
    let email = citizen_email(f, "email");
    let pec = citizen_email(f, "pec");
    let mobile = citizen_mobile(f);
    // A correction whose addresses the personal-data lifecycle removed (stored events only:
    // the console's field list has no `erased`).
    let erased = f.obj.get("erased").and_then(Value::as_bool) == Some(true);
    let none = email.is_none() && mobile.is_none() && pec.is_none() && !erased;
    if none && f.errors.is_empty() {
        f.fail("email", "give at least one of email, mobile or pec");
    }
    let reason = f.text("reason", 1000);
    if none {
        return None;
    }
    reason.map(|reason| EventBody::ContactChanged {
        email,
        mobile,
        pec,
        reason,
    })
}

impl Citizen {
    /// The citizen with the addresses of a `contact_changed` body in place of those on file
    /// (the others, the language, the preferred channel and the opt-outs stay).
    pub fn corrected(&self, change: &EventBody) -> Citizen {
        let mut c = self.clone();
        if let EventBody::ContactChanged {
            email, mobile, pec, ..
        } = change
        {
            if email.is_some() {
                c.email.clone_from(email);
            }
            if mobile.is_some() {
                c.mobile.clone_from(mobile);
            }
            if pec.is_some() {
                c.pec.clone_from(pec);
            }
        }
        c
    }

    /// The channels a `contact_changed` body gives an address for.
    pub fn changed_channels(change: &EventBody) -> Vec<Channel> {
        let mut out = Vec::new();
        if let EventBody::ContactChanged {
            email, mobile, pec, ..
        } = change
        {
            if email.is_some() {
                out.push(Channel::Email);
            }
            if mobile.is_some() {
                out.push(Channel::Sms);
            }
            if pec.is_some() {
                out.push(Channel::Pec);
            }
        }
        out
    }
}

/// An event sent by a client: the body and the instant it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewEvent {
    pub at: Timestamp,
    #[serde(flatten)]
    pub body: EventBody,
}

impl NewEvent {
    /// Validates an event body (`POST /api/v1/tickets/{number}/events` or a `crm_inbox` row of
    /// kind `event`). Kinds Messo records itself (`received`, `rebaselined`) are refused.
    pub fn from_json(value: &Value) -> Result<NewEvent, Vec<FieldError>> {
        NewEvent::parse(value, false)
    }

    /// Reads an event back from the store, where every kind is allowed.
    pub fn from_stored_json(value: &Value) -> Result<NewEvent, Vec<FieldError>> {
        NewEvent::parse(value, true)
    }

    /// The event in the same JSON shape a client sends, `at` in UTC; `extra` fields are added
    /// (the received event keeps the ticket as it arrived).
    pub fn to_stored_json(&self, extra: Option<(&str, Value)>) -> Value {
        let mut v = serde_json::to_value(&self.body).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut v {
            map.insert("at".to_owned(), Value::String(self.at.to_string()));
            if let Some((k, x)) = extra {
                map.insert(k.to_owned(), x);
            }
        }
        v
    }

    fn parse(value: &Value, internal: bool) -> Result<NewEvent, Vec<FieldError>> {
        let kind_name = value.get("kind").and_then(Value::as_str).unwrap_or("");
        let mut known = vec!["kind", "at"];
        known.extend_from_slice(event_fields(kind_name, internal));
        let mut f = Fields::new(value, "", &known).map_err(|e| vec![e])?;
        let at = f.time("at");
        let body = event_body(&mut f, internal);
        match (at, body) {
            (Some(at), Some(body)) if f.errors.is_empty() => Ok(NewEvent { at, body }),
            _ => Err(f.errors),
        }
    }

    /// A hash of the validated content, the default idempotency key of an event sent without one.
    pub fn content_hash(&self) -> String {
        hash_json(&serde_json::to_value(self).unwrap_or(Value::Null))
    }
}

/// The fields an event of kind `kind` has besides `kind` and `at` (`internal`: as stored).
fn event_fields(kind: &str, internal: bool) -> &'static [&'static str] {
    match kind {
        "received" if internal => &["ticket"],
        "rebaselined" if internal => {
            &["policy_version", "calendar_version", "reason", "due_before"]
        }
        "closed" if internal => &["text", "automatic"],
        "contact_made" if internal => &["channel", "text"],
        "contact_changed" if internal => &["email", "mobile", "pec", "reason", "erased"],
        "step_changed" => &["step", "text"],
        "integration_requested" => &["missing"],
        "integration_received" => &["channel", "text"],
        "priority_changed" => &["priority"],
        "category_changed" => &["category"],
        "closed" => &["text"],
        "reopened" => &["reason"],
        "note" => &["text"],
        "expected_date_set" => &["expected_at", "reason"],
        "appointment_proposed" | "appointment_changed" => {
            &["starts_at", "minutes", "place", "officer", "reason"]
        }
        "appointment_cancelled" | "appointment_missed" => &["reason"],
        "appointment_held" => &["text"],
        _ => &[],
    }
}

/// The body of an event by its `kind` (`internal`: the kinds Messo records itself too).
fn event_body(f: &mut Fields<'_>, internal: bool) -> Option<EventBody> {
    match f.str("kind") {
        None => None,
        Some("received") if internal => Some(EventBody::Received),
        Some("rebaselined") if internal => rebaselined(f),
        Some("contact_made") if internal => {
            let channel = f.str("channel").and_then(|c| {
                if CONTACT_CHANNELS.contains(&c) {
                    Some(c.to_owned())
                } else {
                    f.fail(
                        "channel",
                        format!(
                            "unknown channel {c:?}; expected {}",
                            CONTACT_CHANNELS.join("|")
                        ),
                    );
                    None
                }
            });
            let text = f.text("text", 4000);
            channel
                .zip(text)
                .map(|(channel, text)| EventBody::ContactMade { channel, text })
        }
        Some("contact_changed") if internal => contact_changed(f),
        Some("step_changed") => {
            let step = f.text("step", 100);
            let text = f.text("text", 1000);
            step.zip(text)
                .map(|(step, text)| EventBody::StepChanged { step, text })
        }
        Some("integration_requested") => f
            .text("missing", 2000)
            .map(|missing| EventBody::IntegrationRequested { missing }),
        Some("integration_received") => {
            let channel = f.str("channel").and_then(|c| {
                if REPLY_CHANNELS.contains(&c) {
                    Some(c.to_owned())
                } else {
                    f.fail(
                        "channel",
                        format!(
                            "unknown channel {c:?}; expected {}",
                            REPLY_CHANNELS.join("|")
                        ),
                    );
                    None
                }
            });
            let text = f.opt_str("text").map(str::to_owned);
            channel.map(|channel| EventBody::IntegrationReceived { channel, text })
        }
        Some("priority_changed") => f
            .parsed::<Priority>("priority")
            .map(|priority| EventBody::PriorityChanged { priority }),
        Some("category_changed") => f
            .parsed::<Category>("category")
            .map(|category| EventBody::CategoryChanged { category }),
        Some("closed") => Some(EventBody::Closed {
            text: f.opt_str("text").map(str::to_owned),
        }),
        Some("reopened") => f
            .text("reason", 1000)
            .map(|reason| EventBody::Reopened { reason }),
        Some("note") => f.text("text", 4000).map(|text| EventBody::Note { text }),
        Some("expected_date_set") => {
            let expected_at = f.time("expected_at");
            let reason = f.text("reason", 1000);
            expected_at
                .zip(reason)
                .map(|(expected_at, reason)| EventBody::ExpectedDateSet {
                    expected_at,
                    reason,
                })
        }
        Some("appointment_proposed") => {
            let slot = appointment_slot(f);
            let reason = optional_text(f, "reason", 1000);
            slot.map(
                |(starts_at, minutes, place, officer)| EventBody::AppointmentProposed {
                    starts_at,
                    minutes,
                    place,
                    officer,
                    reason,
                },
            )
        }
        Some("appointment_changed") => {
            let slot = appointment_slot(f);
            let reason = f.text("reason", 1000);
            slot.zip(reason)
                .map(|((starts_at, minutes, place, officer), reason)| {
                    EventBody::AppointmentChanged {
                        starts_at,
                        minutes,
                        place,
                        officer,
                        reason,
                    }
                })
        }
        Some("appointment_cancelled") => f
            .text("reason", 1000)
            .map(|reason| EventBody::AppointmentCancelled { reason }),
        Some("appointment_held") => Some(EventBody::AppointmentHeld {
            text: optional_text(f, "text", 4000),
        }),
        Some("appointment_missed") => Some(EventBody::AppointmentMissed {
            reason: optional_text(f, "reason", 1000),
        }),
        Some(other) => {
            f.fail(
                "kind",
                format!(
                    "unknown event kind {other:?}; expected step_changed|integration_requested|integration_received|priority_changed|category_changed|closed|reopened|note|expected_date_set|appointment_proposed|appointment_changed|appointment_cancelled|appointment_held|appointment_missed"
                ),
            );
            None
        }
    }
}

/// Shortest and longest appointment, in minutes.
pub const APPOINTMENT_MINUTES: std::ops::RangeInclusive<u32> = 5..=480;

/// The slot of an appointment event: start, length, place and officer.
fn appointment_slot(f: &mut Fields<'_>) -> Option<(Timestamp, u32, String, String)> {
    let starts_at = f.time("starts_at");
    let minutes = match f.obj.get("minutes") {
        None | Some(Value::Null) => {
            f.fail("minutes", "is required");
            None
        }
        Some(v) => match v.as_u64().and_then(|m| u32::try_from(m).ok()) {
            Some(m) if APPOINTMENT_MINUTES.contains(&m) => Some(m),
            _ => {
                f.fail(
                    "minutes",
                    format!(
                        "must be a whole number of minutes from {} to {}",
                        APPOINTMENT_MINUTES.start(),
                        APPOINTMENT_MINUTES.end()
                    ),
                );
                None
            }
        },
    };
    let place = f.text("place", 300);
    let officer = f.text("officer", 100);
    Some((starts_at?, minutes?, place?, officer?))
}

/// An optional text of at most `max` characters, trimmed; empty counts as absent.
fn optional_text(f: &mut Fields<'_>, key: &str, max: usize) -> Option<String> {
    let s = f.opt_str(key)?.trim();
    if s.chars().count() > max {
        f.fail(key, format!("must be at most {max} characters"));
        return None;
    }
    (!s.is_empty()).then(|| s.to_owned())
}

/// A `rebaselined` event: the versions the ticket moved to, and why.
fn rebaselined(f: &mut Fields<'_>) -> Option<EventBody> {
    let num = |f: &mut Fields<'_>, k: &str| match f.obj.get(k).and_then(Value::as_i64) {
        Some(n) => Some(n),
        None => {
            f.fail(k, "must be an integer");
            None
        }
    };
    let policy_version = num(f, "policy_version");
    let calendar_version = num(f, "calendar_version");
    let reason = f.text("reason", 1000);
    match (policy_version, calendar_version, reason) {
        (Some(policy_version), Some(calendar_version), Some(reason)) => {
            Some(EventBody::Rebaselined {
                policy_version,
                calendar_version,
                reason,
            })
        }
        _ => None,
    }
}

/// What the event history of a ticket says now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    pub priority: Priority,
    pub category: Category,
    /// Waiting for the citizen and time closed, both of which stop the clock.
    pub suspensions: Vec<Suspension>,
    pub waiting_since: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    pub step: Option<(String, String)>,
    pub last_event_at: Timestamp,
    /// When the ticket was switched to on-site assistance (`category_changed` to `in_loco`):
    /// its term counts from then, not from the receipt. `None` for a ticket received as on-site
    /// and for every other category.
    pub on_site_from: Option<Timestamp>,
    /// The ticket's latest appointment, whatever became of it.
    pub appointment: Option<Appointment>,
}

/// What became of an appointment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppointmentStatus {
    Booked,
    Cancelled,
    Held,
    Missed,
}

/// An on-site appointment as the ticket's events leave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appointment {
    /// 1 for the ticket's first appointment, 2 for one booked after it was cancelled or missed…
    pub ordinal: u32,
    /// 0 when proposed, one more at each change (the calendar file's SEQUENCE).
    pub sequence: u32,
    pub starts_at: Timestamp,
    pub minutes: u32,
    pub place: String,
    pub officer: String,
    /// When its current date was set (proposed or changed).
    pub booked_at: Timestamp,
    pub status: AppointmentStatus,
}

impl Appointment {
    /// When the visit ends.
    pub fn ends_at(&self) -> Timestamp {
        self.starts_at.plus(i64::from(self.minutes) * 60)
    }

    /// Whether it is still to take place.
    pub fn is_booked(&self) -> bool {
        self.status == AppointmentStatus::Booked
    }
}

impl Derived {
    /// The appointment still to take place, if any.
    pub fn booked_appointment(&self) -> Option<&Appointment> {
        self.appointment.as_ref().filter(|a| a.is_booked())
    }

    /// The instant the ticket's clock starts: the switch to on-site, else the receipt.
    pub fn clock_start(&self, received_at: Timestamp) -> Timestamp {
        self.on_site_from.unwrap_or(received_at)
    }

    /// The state of a ticket just created.
    pub fn new(t: &NewTicket) -> Derived {
        Derived {
            priority: t.priority,
            category: t.category,
            suspensions: Vec::new(),
            waiting_since: None,
            closed_at: None,
            step: t.step.clone(),
            last_event_at: t.received_at,
            on_site_from: None,
            appointment: None,
        }
    }
}

/// Why an event does not fit the ticket's history. `Conflict` is about the ticket's state (409);
/// `Invalid` about the event itself (422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventRejection {
    #[error("{0}")]
    Conflict(String),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

/// How far ahead the office may set a new expected date (a year).
pub const MAX_EXPECTED_DATE_S: i64 = 366 * 86_400;

/// Clock skew tolerated for events stamped slightly in the future.
pub const FUTURE_TOLERANCE_S: i64 = 300;

/// Applies one event to the derived state, or says why it cannot happen. Pure: `now` is given.
pub fn apply(
    d: &mut Derived,
    received_at: Timestamp,
    e: &NewEvent,
    now: Timestamp,
) -> Result<(), EventRejection> {
    check_time(d, received_at, e, now)?;
    let closed = d.closed_at.is_some();
    let conflict = |m: &str| Err(EventRejection::Conflict(m.to_owned()));
    match &e.body {
        EventBody::Reopened { .. } if !closed => return conflict("the ticket is not closed"),
        EventBody::Reopened { .. }
        | EventBody::Note { .. }
        | EventBody::Rebaselined { .. }
        | EventBody::ContactMade { .. }
        | EventBody::ContactChanged { .. } => {}
        _ if closed => return conflict("the ticket is closed; reopen it first"),
        _ => {}
    }
    change(d, e)?;
    d.last_event_at = e.at;
    Ok(())
}

/// An event comes after the receipt and the last event, and not from the future.
fn check_time(
    d: &Derived,
    received_at: Timestamp,
    e: &NewEvent,
    now: Timestamp,
) -> Result<(), EventRejection> {
    let invalid = |message: String| EventRejection::Invalid {
        field: "at".to_owned(),
        message,
    };
    if e.at < received_at {
        return Err(invalid(format!(
            "the event ({}) is earlier than the ticket's receipt ({})",
            e.at, received_at
        )));
    }
    if e.at < d.last_event_at {
        return Err(invalid(format!(
            "events must arrive in order: this one ({}) is earlier than the last one ({})",
            e.at, d.last_event_at
        )));
    }
    if e.at.0 > now.0 + FUTURE_TOLERANCE_S {
        return Err(invalid(format!("the event ({}) is in the future", e.at)));
    }
    Ok(())
}

/// What the event changes in the derived state, or why it conflicts with it (then nothing
/// changed).
fn change(d: &mut Derived, e: &NewEvent) -> Result<(), EventRejection> {
    let conflict = |m: &str| Err(EventRejection::Conflict(m.to_owned()));
    match &e.body {
        EventBody::Received => return conflict("a ticket is received only once"),
        EventBody::StepChanged { step, text } => d.step = Some((step.clone(), text.clone())),
        EventBody::IntegrationRequested { .. } => {
            if let Some(since) = d.waiting_since {
                return Err(EventRejection::Conflict(format!(
                    "the ticket already waits for an integrazione since {since}"
                )));
            }
            d.waiting_since = Some(e.at);
            d.suspensions.push(Suspension {
                from: e.at,
                to: None,
            });
        }
        EventBody::IntegrationReceived { .. } => {
            if d.waiting_since.take().is_none() {
                return conflict("the ticket is not waiting for an integrazione");
            }
            close_open_suspension(d, e.at);
        }
        EventBody::PriorityChanged { priority } => {
            if *priority == d.priority {
                return Err(EventRejection::Invalid {
                    field: "priority".to_owned(),
                    message: format!("the ticket's priority is already {priority}"),
                });
            }
            d.priority = *priority;
        }
        EventBody::CategoryChanged { category } => {
            if *category == d.category {
                return Err(EventRejection::Invalid {
                    field: "category".to_owned(),
                    message: format!("the ticket's category is already {category}"),
                });
            }
            if d.booked_appointment().is_some() {
                return conflict(
                    "the ticket has an appointment booked; cancel it before changing the category",
                );
            }
            d.category = *category;
            d.on_site_from = (*category == Category::InLoco).then_some(e.at);
        }
        EventBody::Closed { .. } => close(d, e.at),
        EventBody::AppointmentProposed { .. }
        | EventBody::AppointmentChanged { .. }
        | EventBody::AppointmentCancelled { .. }
        | EventBody::AppointmentHeld { .. }
        | EventBody::AppointmentMissed { .. } => appointment_change(d, e)?,
        EventBody::Reopened { .. } => {
            d.closed_at = None;
            close_open_suspension(d, e.at);
        }
        EventBody::ExpectedDateSet { expected_at, .. } => {
            let late = e.at.plus(MAX_EXPECTED_DATE_S);
            if *expected_at <= e.at || *expected_at > late {
                return Err(EventRejection::Invalid {
                    field: "expected_at".to_owned(),
                    message: format!(
                        "the new expected date ({expected_at}) must come after the event ({}) and within a year of it",
                        e.at
                    ),
                });
            }
        }
        EventBody::Note { .. }
        | EventBody::Rebaselined { .. }
        | EventBody::ContactMade { .. }
        | EventBody::ContactChanged { .. } => {}
    }
    Ok(())
}

/// Closing ends any wait; the time closed does not count if the ticket is reopened.
fn close(d: &mut Derived, at: Timestamp) {
    if d.waiting_since.take().is_some() {
        close_open_suspension(d, at);
    }
    d.closed_at = Some(at);
    d.suspensions.push(Suspension { from: at, to: None });
}

/// What an appointment event changes (the rules that need no calendar; the office hours and
/// the term are checked when the event is recorded, by `record::check_appointment`).
fn appointment_change(d: &mut Derived, e: &NewEvent) -> Result<(), EventRejection> {
    let conflict = |m: String| Err(EventRejection::Conflict(m));
    let invalid = |field: &str, message: String| {
        Err(EventRejection::Invalid {
            field: field.to_owned(),
            message,
        })
    };
    if d.category != Category::InLoco {
        return conflict(format!(
            "appointments are for on-site assistance (category in_loco); this ticket is {}",
            d.category
        ));
    }
    let future = |starts_at: Timestamp| {
        if starts_at <= e.at {
            invalid(
                "starts_at",
                format!("the appointment ({starts_at}) is in the past"),
            )
        } else {
            Ok(())
        }
    };
    match (&e.body, d.appointment.as_mut().filter(|a| a.is_booked())) {
        (EventBody::AppointmentProposed { .. }, Some(a)) => conflict(format!(
            "the ticket already has an appointment on {}; change or cancel it",
            a.starts_at
        )),
        (
            EventBody::AppointmentProposed {
                starts_at,
                minutes,
                place,
                officer,
                ..
            },
            None,
        ) => {
            future(*starts_at)?;
            let ordinal = d.appointment.as_ref().map_or(0, |a| a.ordinal) + 1;
            d.appointment = Some(Appointment {
                ordinal,
                sequence: 0,
                starts_at: *starts_at,
                minutes: *minutes,
                place: place.clone(),
                officer: officer.clone(),
                booked_at: e.at,
                status: AppointmentStatus::Booked,
            });
            Ok(())
        }
        (_, None) => conflict("the ticket has no appointment booked".to_owned()),
        (
            EventBody::AppointmentChanged {
                starts_at,
                minutes,
                place,
                officer,
                ..
            },
            Some(a),
        ) => {
            future(*starts_at)?;
            a.sequence += 1;
            a.starts_at = *starts_at;
            a.minutes = *minutes;
            a.place.clone_from(place);
            a.officer.clone_from(officer);
            a.booked_at = e.at;
            Ok(())
        }
        (EventBody::AppointmentCancelled { .. }, Some(a)) => {
            a.status = AppointmentStatus::Cancelled;
            Ok(())
        }
        (EventBody::AppointmentHeld { .. } | EventBody::AppointmentMissed { .. }, Some(a))
            if e.at < a.starts_at =>
        {
            invalid(
                "at",
                format!(
                    "the appointment starts at {}: it cannot be recorded as held or missed before",
                    a.starts_at
                ),
            )
        }
        (EventBody::AppointmentHeld { .. }, Some(a)) => {
            a.status = AppointmentStatus::Held;
            // The visit is what the citizen asked for: the term is met and the ticket closed.
            close(d, e.at);
            Ok(())
        }
        (EventBody::AppointmentMissed { .. }, Some(a)) => {
            a.status = AppointmentStatus::Missed;
            Ok(())
        }
        (_, Some(_)) => Ok(()),
    }
}

fn close_open_suspension(d: &mut Derived, at: Timestamp) {
    if let Some(s) = d.suspensions.iter_mut().rev().find(|s| s.to.is_none()) {
        s.to = Some(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_numbers_are_refused_with_their_reason() {
        assert_eq!(
            TicketNumber::parse("2026/000123").map(|n| n.to_string()),
            Ok("2026/000123".to_owned())
        );
        assert_eq!(TicketNumber::parse(""), Err(TicketNumberError::Length(0)));
        let long = TicketNumber::parse(&"9".repeat(65)).expect_err("too long");
        assert_eq!(long.to_string(), "must be 1–64 characters, found 65");
        let odd = TicketNumber::parse("-12 3").expect_err("bad characters");
        assert_eq!(
            odd.to_string(),
            "\"-12 3\" may hold only letters, digits and . _ / -, starting with a letter or digit"
        );
    }
    use serde_json::json;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    fn body() -> Value {
        json!({
            "number": "2026/000123",
            "office": "anagrafe",
            "category": "generale",
            "priority": "alta",
            "subject": "Certificato di residenza",
            "received_at": "2026-03-02T10:15:00+01:00",
            "citizen": {"email": "mario.rossi@example.it", "mobile": "+39 347 123 4567", "fiscal_code": "rssmra80a01h501u"}
        })
    }

    #[test]
    fn an_erased_ticket_still_reads_back_with_everything_but_the_citizen() {
        let t = NewTicket::from_json(&body()).expect("ticket");
        let stored = NewEvent {
            at: t.received_at,
            body: EventBody::Received,
        }
        .to_stored_json(Some(("ticket", t.to_json())));
        let erased = erased_event_data("received", &stored).expect("a citizen to erase");
        assert_eq!(
            erased["ticket"]["citizen"],
            json!({"erased": true, "language": "it"})
        );
        assert!(!erased.to_string().contains("rossi"), "{erased}");
        assert_eq!(erased_event_data("received", &erased), None, "once only");
        assert!(
            NewTicket::from_json(&erased["ticket"]).is_err(),
            "not from a client"
        );
        let back = NewTicket::from_stored_json(&erased["ticket"]).expect("stored");
        assert_eq!(back.citizen, Citizen::default());
        assert_eq!(
            (back.number, back.received_at, back.priority),
            (t.number, t.received_at, t.priority)
        );

        let change = json!({"kind": "contact_changed", "at": "2026-03-03T10:00:00+01:00",
                            "email": "nuova@example.it", "reason": "al telefono"});
        let erased = erased_event_data("contact_changed", &change).expect("addresses");
        assert!(!erased.to_string().contains("nuova"), "{erased}");
        assert!(NewEvent::from_stored_json(&erased).is_ok(), "{erased}");
        assert!(contact_change(&json!({"erased": true, "reason": "x"})).is_err());
        let reply = json!({"kind": "integration_received", "at": "2026-03-03T10:00:00+01:00",
                           "channel": "email", "text": "ecco il documento"});
        let erased = erased_event_data("integration_received", &reply).expect("a text");
        assert_eq!(erased["text"], Value::Null);
        assert!(NewEvent::from_stored_json(&erased).is_ok());
        assert_eq!(erased_event_data("note", &reply), None);
    }

    #[test]
    fn contact_events_are_the_console_s_and_fit_a_closed_ticket() {
        let change = contact_change(&json!({"mobile": "347 765 4321", "reason": "al telefono"}))
            .expect("a correction");
        assert_eq!(
            change,
            EventBody::ContactChanged {
                email: None,
                mobile: Some("+393477654321".into()),
                pec: None,
                reason: "al telefono".into()
            }
        );
        let bad = contact_change(&json!({"email": "non-un-indirizzo", "reason": ""}))
            .expect_err("refused");
        let fields: Vec<&str> = bad.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["email", "reason"]);
        let none = contact_change(&json!({"reason": "x"})).expect_err("no address");
        assert_eq!(none[0].field, "email");
        let citizen: Citizen =
            serde_json::from_value(json!({"email": "a@b.it", "mobile": "+393471234567"}))
                .expect("citizen");
        let fixed = citizen.corrected(&change);
        assert_eq!(fixed.mobile.as_deref(), Some("+393477654321"));
        assert_eq!(fixed.email.as_deref(), Some("a@b.it"));
        assert_eq!(Citizen::changed_channels(&change), vec![Channel::Sms]);
        // Clients cannot send them; stored, they read back and fit a closed ticket.
        let made = json!({"kind": "contact_made", "at": "2026-03-04T10:00:00+01:00",
                          "channel": "phone", "text": "Richiamato"});
        assert!(NewEvent::from_json(&made).is_err());
        let e = NewEvent::from_stored_json(&made).expect("stored");
        assert_eq!(e.body.kind(), "contact_made");
        let mut stored = NewEvent {
            at: e.at,
            body: change,
        }
        .to_stored_json(None);
        stored["kind"] = json!("contact_changed");
        assert!(NewEvent::from_stored_json(&stored).is_ok(), "{stored}");
        let t = NewTicket::from_json(&body()).expect("ticket");
        let mut d = Derived::new(&t);
        let close = NewEvent {
            at: ts("2026-03-03T10:00:00+01:00"),
            body: EventBody::Closed { text: None },
        };
        let now = ts("2026-03-05T10:00:00+01:00");
        apply(&mut d, t.received_at, &close, now).expect("closed");
        apply(&mut d, t.received_at, &e, now).expect("a contact on a closed ticket");
        assert_eq!(Source::Console.as_str(), "console");
    }

    #[test]
    fn a_valid_ticket_is_normalized() {
        let t = NewTicket::from_json(&body()).unwrap();
        assert_eq!(t.number.as_str(), "2026/000123");
        assert_eq!(t.citizen.mobile.as_deref(), Some("+393471234567"));
        assert_eq!(t.citizen.fiscal_code.as_deref(), Some("RSSMRA80A01H501U"));
        assert_eq!(t.citizen.preferred_channel, Channel::Email);
        let mut reordered = body();
        reordered["citizen"]["mobile"] = json!("+393471234567");
        assert_eq!(
            NewTicket::from_json(&reordered).unwrap().content_hash(),
            t.content_hash()
        );
    }

    #[test]
    fn every_problem_is_named() {
        let mut b = body();
        b["priority"] = json!("Urgent");
        b["received_at"] = json!("2026-03-02T10:15:00");
        b["citizen"]["mobile"] = json!("347 123");
        b["citizen"]["fiscal_code"] = json!("RSSMRA80A01H501X");
        b["colour"] = json!("blue");
        let errs = NewTicket::from_json(&b).unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "priority",
            "received_at",
            "citizen.mobile",
            "citizen.fiscal_code",
            "colour",
        ] {
            assert!(fields.contains(&f), "{f} missing from {errs:?}");
        }
        assert!(NewTicket::from_json(&json!([1, 2])).is_err());
        let mut no_contact = body();
        no_contact["citizen"] = json!({"language": "it"});
        assert_eq!(
            NewTicket::from_json(&no_contact).unwrap_err()[0].field,
            "citizen.email"
        );
    }

    #[test]
    fn fiscal_code_check_letter() {
        assert!(normalize_fiscal_code("RSSMRA80A01H501U").is_some());
        assert!(normalize_fiscal_code("RSSMRA80A01H501A").is_none());
        assert!(normalize_fiscal_code("RSSMRA80A01H50").is_none());
    }

    #[test]
    fn history_rules() {
        let t = NewTicket::from_json(&body()).unwrap();
        let mut d = Derived::new(&t);
        let now = ts("2026-03-10T10:00:00+01:00");
        let ev = |v: Value| NewEvent::from_json(&v).unwrap();
        let reply = ev(
            json!({"kind": "integration_received", "at": "2026-03-03T10:00:00+01:00", "channel": "sms"}),
        );
        assert!(matches!(
            apply(&mut d.clone(), t.received_at, &reply, now),
            Err(EventRejection::Conflict(_))
        ));
        let req = ev(
            json!({"kind": "integration_requested", "at": "2026-03-02T11:00:00+01:00", "missing": "documento"}),
        );
        apply(&mut d, t.received_at, &req, now).unwrap();
        assert!(matches!(
            apply(&mut d.clone(), t.received_at, &req, now),
            Err(EventRejection::Conflict(_))
        ));
        apply(&mut d, t.received_at, &reply, now).unwrap();
        assert_eq!(
            d.suspensions,
            vec![Suspension {
                from: ts("2026-03-02T11:00:00+01:00"),
                to: Some(ts("2026-03-03T10:00:00+01:00"))
            }]
        );
        let old = ev(json!({"kind": "note", "at": "2026-03-02T12:00:00+01:00", "text": "x"}));
        assert!(matches!(
            apply(&mut d.clone(), t.received_at, &old, now),
            Err(EventRejection::Invalid { .. })
        ));
        let future = ev(json!({"kind": "note", "at": "2026-03-11T12:00:00+01:00", "text": "x"}));
        assert!(apply(&mut d.clone(), t.received_at, &future, now).is_err());
        let close = ev(json!({"kind": "closed", "at": "2026-03-04T10:00:00+01:00"}));
        apply(&mut d, t.received_at, &close, now).unwrap();
        let step = ev(
            json!({"kind": "step_changed", "at": "2026-03-05T10:00:00+01:00", "step": "x", "text": "y"}),
        );
        assert!(matches!(
            apply(&mut d.clone(), t.received_at, &step, now),
            Err(EventRejection::Conflict(_))
        ));
        let reopen =
            ev(json!({"kind": "reopened", "at": "2026-03-05T10:00:00+01:00", "reason": "errore"}));
        apply(&mut d, t.received_at, &reopen, now).unwrap();
        assert_eq!(d.closed_at, None);
        assert_eq!(d.suspensions[1].to, Some(ts("2026-03-05T10:00:00+01:00")));
        let unknown =
            NewEvent::from_json(&json!({"kind": "escalated", "at": "2026-03-05T10:00:00+01:00"}));
        assert_eq!(unknown.unwrap_err()[0].field, "kind");
    }

    #[test]
    fn appointments_round_trip_and_follow_their_rules() {
        let mut b = body();
        b["category"] = json!("in_loco");
        let t = NewTicket::from_json(&b).unwrap();
        let mut d = Derived::new(&t);
        let now = ts("2026-03-10T10:00:00+01:00");
        let ev = |v: Value| NewEvent::from_json(&v).unwrap();
        let propose = ev(
            json!({"kind": "appointment_proposed", "at": "2026-03-02T11:00:00+01:00",
            "starts_at": "2026-03-04T10:00:00+01:00", "minutes": 30,
            "place": " Via Roma 1 ", "officer": "Giulia Neri", "reason": ""}),
        );
        // Stored and read back, it is the same event (starts_at as RFC 3339, not a number).
        let mut stored = propose.to_stored_json(None);
        assert_eq!(stored["starts_at"], json!("2026-03-04T09:00:00+00:00"));
        assert!(stored.get("reason").is_none(), "an empty reason is absent");
        stored["kind"] = json!("appointment_proposed");
        assert_eq!(NewEvent::from_stored_json(&stored).unwrap(), propose);
        apply(&mut d, t.received_at, &propose, now).unwrap();
        let a = d.booked_appointment().expect("booked");
        assert_eq!(
            (a.ordinal, a.sequence, a.place.as_str()),
            (1, 0, "Via Roma 1")
        );
        assert_eq!(a.ends_at(), ts("2026-03-04T10:30:00+01:00"));
        let change = ev(
            json!({"kind": "appointment_changed", "at": "2026-03-03T11:00:00+01:00",
            "starts_at": "2026-03-05T10:00:00+01:00", "minutes": 60,
            "place": "Via Roma 1", "officer": "Marco Gialli", "reason": "assenza"}),
        );
        apply(&mut d, t.received_at, &change, now).unwrap();
        assert_eq!(d.booked_appointment().map(|a| a.sequence), Some(1));
        let early = ev(json!({"kind": "appointment_held", "at": "2026-03-05T09:00:00+01:00"}));
        assert!(matches!(
            apply(&mut d.clone(), t.received_at, &early, now),
            Err(EventRejection::Invalid { .. })
        ));
        let recat = ev(
            json!({"kind": "category_changed", "at": "2026-03-05T09:00:00+01:00",
            "category": "generale"}),
        );
        assert!(matches!(
            apply(&mut d.clone(), t.received_at, &recat, now),
            Err(EventRejection::Conflict(_))
        ));
        let held = ev(json!({"kind": "appointment_held", "at": "2026-03-05T11:00:00+01:00"}));
        apply(&mut d, t.received_at, &held, now).unwrap();
        assert_eq!(d.closed_at, Some(ts("2026-03-05T11:00:00+01:00")));
        assert_eq!(
            d.appointment.as_ref().map(|a| a.status),
            Some(AppointmentStatus::Held)
        );
        let bad = NewEvent::from_json(&json!({"kind": "appointment_proposed",
            "at": "2026-03-02T11:00:00+01:00", "starts_at": "domani", "minutes": 1000,
            "place": "", "officer": "x"}))
        .unwrap_err();
        let fields: Vec<&str> = bad.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["starts_at", "minutes", "place"]);
        // Only for on-site tickets.
        let general = NewTicket::from_json(&body()).unwrap();
        assert!(matches!(
            apply(
                &mut Derived::new(&general),
                general.received_at,
                &propose,
                now
            ),
            Err(EventRejection::Conflict(_))
        ));
    }
}
