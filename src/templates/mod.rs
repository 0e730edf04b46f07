//! Message templates: the words citizens and the office read.
//!
//! - A template is named by audience (`cittadino`, `ufficio`), notice kind and language, and has
//!   up to six parts: the e-mail subject, plain text and HTML, the SMS, and the subject and
//!   Markdown body of a message in the app IO ([`io`]).
//! - The defaults are files under `templates/`, embedded at build time ([`Catalog`]); admins'
//!   edits are versions in the store, and the live version of each template is compiled into a
//!   [`Templates`] set the dispatcher reads without a restart.
//! - Rendering is handlebars in strict mode: a variable the message does not have is an error,
//!   never empty text. Only HTML bodies are HTML-escaped.
//! - [`Templates::check`] is the gate every edit passes before it is rendered to anyone or can go
//!   live: it compiles each part and walks its syntax tree against a closed set of constructs
//!   ([`guard`]: no recursion, bounded nesting and size), renders every sample context within an
//!   output bound, decides on the rendered HTML with hostile values against an allow-list
//!   ([`html`]) and counts each SMS. The dispatcher checks every HTML body it renders too.

pub mod guard;
pub mod helpers;
pub mod html;
pub mod io;
pub use messo_core::sms;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use handlebars::{Handlebars, RenderError, RenderErrorReason, TemplateError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::domain::{Channel, Kind, Lang};
use sms::SmsBudget;

mod bundled {
    include!(concat!(env!("OUT_DIR"), "/bundled_templates.rs"));
}

pub use crate::domain::Audience;

/// A template's name: audience, notice kind, language.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub audience: Audience,
    pub kind: String,
    pub lang: Lang,
}

fn lang_str(l: Lang) -> &'static str {
    match l {
        Lang::It => "it",
        Lang::En => "en",
    }
}

impl Key {
    pub fn new(audience: Audience, kind: &str, lang: Lang) -> Key {
        Key {
            audience,
            kind: kind.to_owned(),
            lang,
        }
    }

    pub fn lang_str(&self) -> &'static str {
        lang_str(self.lang)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.audience.as_str(),
            self.kind,
            self.lang_str()
        )
    }
}

/// The editable text of a template.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Content {
    pub subject: String,
    pub text: String,
    #[serde(default)]
    pub html: Option<String>,
    #[serde(default)]
    pub sms: Option<String>,
    /// The subject of a message in the app IO (plain text).
    #[serde(default)]
    pub io_subject: Option<String>,
    /// The body of a message in the app IO (the app's Markdown subset).
    #[serde(default)]
    pub io_markdown: Option<String>,
}

/// A part of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    Subject,
    Text,
    Html,
    Sms,
    #[serde(rename = "io_subject")]
    IoSubject,
    #[serde(rename = "io_markdown")]
    IoMarkdown,
}

impl Part {
    pub const ALL: [Part; 6] = [
        Part::Subject,
        Part::Text,
        Part::Html,
        Part::Sms,
        Part::IoSubject,
        Part::IoMarkdown,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Part::Subject => "subject",
            Part::Text => "text",
            Part::Html => "html",
            Part::Sms => "sms",
            Part::IoSubject => "io_subject",
            Part::IoMarkdown => "io_markdown",
        }
    }

    /// This part of `c`, if `c` has it.
    pub fn of(self, c: &Content) -> Option<&str> {
        match self {
            Part::Subject => Some(&c.subject),
            Part::Text => Some(&c.text),
            Part::Html => c.html.as_deref(),
            Part::Sms => c.sms.as_deref(),
            Part::IoSubject => c.io_subject.as_deref(),
            Part::IoMarkdown => c.io_markdown.as_deref(),
        }
    }

    /// The channel whose context renders this part.
    fn channel(self) -> Channel {
        match self {
            Part::Sms => Channel::Sms,
            Part::IoSubject | Part::IoMarkdown => Channel::Io,
            Part::Subject | Part::Text | Part::Html => Channel::Email,
        }
    }
}

impl Content {
    /// Whether the content has the parts of a message in the app IO.
    pub fn has_io(&self) -> bool {
        self.io_subject.is_some() && self.io_markdown.is_some()
    }
}

/// Why an edit cannot go live: which part, where, with which sample, and what is wrong (in
/// Italian, for the URP's admins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub part: Part,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The sample context that failed, when the problem appears only on rendering.
    pub sample: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.part.as_str())?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, " (riga {l}, colonna {c})")?;
        }
        if let Some(s) = self.sample {
            write!(f, " [esempio {s}]")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A default template from `templates/`.
#[derive(Debug, Clone)]
pub struct DefaultTemplate {
    pub description: String,
    pub content: Content,
    pub samples: Vec<Value>,
}

/// Why the bundled files do not make a catalog (a packaging bug, caught by the tests).
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("templates/{path}: {message}")]
    File { path: String, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    description: String,
    subject: String,
    text: String,
    #[serde(default)]
    html: Option<String>,
    #[serde(default)]
    sms: Option<String>,
    #[serde(default)]
    io_subject: Option<String>,
    #[serde(default)]
    io_markdown: Option<String>,
}

/// One line of a bundled partial, `<name>_<lang>` (`risposta_sms_it`), rendered with `ctx`
/// as plain text: the words Messo adds around a message come from templates too. `None` when
/// the partial is missing or does not render (strict: a missing value is an error).
pub fn partial_line(name: &str, lang: Lang, ctx: &Value) -> Option<String> {
    static CATALOG: std::sync::OnceLock<Option<Catalog>> = std::sync::OnceLock::new();
    let catalog = CATALOG.get_or_init(|| Catalog::bundled().ok()).as_ref()?;
    let source = catalog
        .partials
        .get(&format!("{name}_{}", lang_str(lang)))?;
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    let line = hb.render_template(source, ctx).ok()?;
    let line = line.trim().to_owned();
    (!line.is_empty()).then_some(line)
}

/// The line an SMS sent under an alphanumeric sender ends with, naming the number replies go
/// to, in each language: the bundled partials `risposta_sms_it` and `risposta_sms_en` rendered
/// with `numero`. A language whose partial is missing or does not render has no line.
pub fn sms_reply_lines(number: &str) -> BTreeMap<Lang, String> {
    [Lang::It, Lang::En]
        .into_iter()
        .filter_map(|lang| {
            partial_line(
                "risposta_sms",
                lang,
                &serde_json::json!({ "numero": number }),
            )
            .map(|l| (lang, l))
        })
        .collect()
}

/// The bundled defaults: every template, its samples, and the partials.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub defaults: BTreeMap<Key, DefaultTemplate>,
    pub partials: BTreeMap<String, String>,
}

impl Catalog {
    /// The catalog embedded in the binary.
    pub fn bundled() -> Result<Catalog, CatalogError> {
        Catalog::from_files(bundled::FILES.iter().copied())
    }

    /// A catalog from `(path under templates/, content)` pairs.
    pub fn from_files<'a>(
        files: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<Catalog, CatalogError> {
        let mut defaults = BTreeMap::new();
        let mut partials = BTreeMap::new();
        let mut samples: HashMap<(Audience, String), Vec<Value>> = HashMap::new();
        for (path, content) in files {
            let err = |message: String| CatalogError::File {
                path: path.to_owned(),
                message,
            };
            let segs: Vec<&str> = path.split('/').collect();
            match segs.as_slice() {
                ["partials", name] => {
                    let stem = name
                        .strip_suffix(".hbs")
                        .ok_or_else(|| err("a partial is a .hbs file".to_owned()))?;
                    partials.insert(stem.to_owned(), content.to_owned());
                }
                ["samples", audience, file] => {
                    let audience = audience
                        .parse::<Audience>()
                        .map_err(|e| err(e.to_string()))?;
                    let kind = file
                        .strip_suffix(".json")
                        .ok_or_else(|| err("samples are .json files".to_owned()))?;
                    let list: Vec<Value> =
                        serde_json::from_str(content).map_err(|e| err(e.to_string()))?;
                    if list.is_empty() || list.iter().any(|v| !v.is_object()) {
                        return Err(err("a non-empty array of objects".to_owned()));
                    }
                    samples.insert((audience, kind.to_owned()), list);
                }
                [audience, lang, file] => {
                    let audience = audience
                        .parse::<Audience>()
                        .map_err(|e| err(e.to_string()))?;
                    let lang = lang.parse::<Lang>().map_err(|e| err(e.to_string()))?;
                    let kind = file
                        .strip_suffix(".toml")
                        .ok_or_else(|| err("templates are .toml files".to_owned()))?;
                    let f: TemplateFile =
                        toml::from_str(content).map_err(|e| err(e.to_string()))?;
                    if f.io_subject.is_some() != f.io_markdown.is_some() {
                        return Err(err(
                            "io_subject and io_markdown go together: both or neither".to_owned(),
                        ));
                    }
                    defaults.insert(
                        Key::new(audience, kind, lang),
                        DefaultTemplate {
                            description: f.description,
                            content: Content {
                                subject: f.subject,
                                text: f.text,
                                html: f.html,
                                sms: f.sms,
                                io_subject: f.io_subject,
                                io_markdown: f.io_markdown,
                            },
                            samples: Vec::new(),
                        },
                    );
                }
                _ if path.ends_with(".md") => {}
                _ => return Err(err("not where a template file belongs".to_owned())),
            }
        }
        for (key, d) in &mut defaults {
            d.samples = samples
                .get(&(key.audience, key.kind.clone()))
                .cloned()
                .ok_or_else(|| CatalogError::File {
                    path: format!("samples/{}/{}.json", key.audience.as_str(), key.kind),
                    message: format!("missing: {key} needs sample contexts"),
                })?;
        }
        Ok(Catalog { defaults, partials })
    }
}

/// The variable holding the citizen's status link (set by the dispatcher, null without one).
pub const STATUS_URL: &str = "status_url";

/// The variable holding the ticket's six-digit access code, in the receipt (set by the
/// dispatcher when the portal is on, null otherwise and in every other message).
pub const ACCESS_CODE: &str = "codice_accesso";

/// The variable that asks the satisfaction question: true in a citizen's closure notice when
/// `survey.enabled` (set at render time), false everywhere else.
pub const SURVEY: &str = "survey";

/// A status link to `base` of the length a real one has (a token for a seven-digit ticket id).
fn example_link(base: &str) -> String {
    format!("{base}/s/AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxg")
}

/// What every message may use besides its own payload, and the SMS rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub comune: String,
    pub urp_phone: String,
    pub urp_email: String,
    /// The URP's hours in words, per language.
    pub urp_hours_it: String,
    pub urp_hours_en: String,
    /// Seconds in a working day, for `durata`.
    pub working_day_s: i64,
    /// Replace typographic quotes, apostrophes and dashes in SMS before counting and sending.
    pub sms_plain_punctuation: bool,
    /// The most SMS parts a citizen SMS may take, per kind (others: `sms_max_parts_default`).
    pub sms_max_parts: BTreeMap<String, u32>,
    pub sms_max_parts_default: u32,
    /// A status link as long as a real one (the portal's base address and a token), put into
    /// previews and checks in place of a sample's; `None` when the portal is off.
    pub status_url_example: Option<String>,
    /// The closure notice asks the satisfaction question (`survey.enabled`).
    pub survey: bool,
    /// The privacy notice, the accessibility statement, where to complain (`[comune]`).
    pub links: crate::config::ComuneLinks,
}

/// The `[templates]` keys only the catalog can judge: every kind named in
/// `templates.sms_max_parts_by_kind` must be a kind of notice. Config stays plain data (it
/// imports no subsystem); the binary runs this check right after loading it.
pub fn check_config(config: &crate::config::Config) -> Result<(), crate::config::ConfigError> {
    let catalog = Catalog::bundled().map_err(|e| crate::config::ConfigError::Invalid {
        source_name: config.source_name.clone(),
        problems: vec![crate::config::Problem {
            key: "templates".to_owned(),
            message: format!("the bundled templates do not load: {e}"),
        }],
    })?;
    let problems: Vec<crate::config::Problem> = config
        .templates
        .sms_max_parts_by_kind
        .keys()
        .filter(|kind| !catalog.defaults.keys().any(|k| &k.kind == *kind))
        .map(|kind| crate::config::Problem {
            key: format!("templates.sms_max_parts_by_kind.{kind}"),
            message: format!("unknown notice kind {kind:?}"),
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(crate::config::ConfigError::Invalid {
            source_name: config.source_name.clone(),
            problems,
        })
    }
}

impl Settings {
    /// Sensible settings for tests and previews.
    pub fn example() -> Settings {
        Settings {
            comune: "Comune di Esempio".to_owned(),
            urp_phone: "06 1234 5678".to_owned(),
            urp_email: "urp@comune.example.it".to_owned(),
            urp_hours_it: "dal lunedì al venerdì, dalle 09:00 alle 17:00".to_owned(),
            urp_hours_en: "Monday to Friday, 09:00 to 17:00".to_owned(),
            working_day_s: 8 * 3600,
            sms_plain_punctuation: true,
            sms_max_parts: BTreeMap::new(),
            sms_max_parts_default: 2,
            status_url_example: Some(example_link("https://urp.comune.example.it")),
            survey: false,
            links: crate::config::ComuneLinks {
                privacy_url: Some("https://www.comune.example.it/privacy".to_owned()),
                accessibility_url: Some(
                    "https://form.agid.gov.it/view/00000000-0000-0000-0000-000000000000".to_owned(),
                ),
                complaint_url: Some("https://www.comune.example.it/reclami".to_owned()),
                complaint_email: Some("reclami@comune.example.it".to_owned()),
            },
        }
    }

    /// The settings the configuration gives.
    pub fn from_config(config: &crate::config::Config) -> Settings {
        let weekly = &config.calendar.weekly;
        let working_day_s = weekly
            .iter()
            .find(|w| !w.is_empty())
            .map_or(8 * 3600, |ws| {
                ws.iter()
                    .map(|w| i64::from(w.end_min.saturating_sub(w.start_min)) * 60)
                    .sum()
            });
        Settings {
            comune: config.comune_name.clone(),
            urp_phone: config.notify.office_phone.clone(),
            urp_email: config.notify.office_email.to_string(),
            urp_hours_it: crate::locale::office_hours(Lang::It, weekly),
            urp_hours_en: crate::locale::office_hours(Lang::En, weekly),
            working_day_s,
            sms_plain_punctuation: config.templates.sms_plain_punctuation,
            sms_max_parts: config.templates.sms_max_parts_by_kind.clone(),
            sms_max_parts_default: config.templates.sms_max_parts,
            status_url_example: config
                .portal
                .enabled
                .then(|| example_link(&config.portal.base_url)),
            survey: config.survey.enabled,
            links: config.comune_links.clone(),
        }
    }

    /// What a preview renders: the payload with the example status link in place of a
    /// sample's (or a real ticket's missing one), unless it says `null` on purpose.
    pub fn with_example_link<'a>(&self, payload: &'a Value) -> std::borrow::Cow<'a, Value> {
        match (&self.status_url_example, payload.get(STATUS_URL), payload) {
            (Some(url), Some(Value::String(_)) | None, Value::Object(m)) => {
                let mut m = m.clone();
                m.insert(STATUS_URL.to_owned(), Value::String(url.clone()));
                std::borrow::Cow::Owned(Value::Object(m))
            }
            _ => std::borrow::Cow::Borrowed(payload),
        }
    }

    /// The part budget of kind `kind`'s SMS.
    pub fn max_parts(&self, kind: &str) -> u32 {
        self.sms_max_parts
            .get(kind)
            .copied()
            .unwrap_or(self.sms_max_parts_default)
    }

    /// The payload with the globals added (`comune`, `lang`, `channel`, `urp.*`,
    /// `status_url`: the citizen's signed status link, null when the message has none, and
    /// `survey`: whether to ask the satisfaction question, false unless the payload says so).
    /// On the `io` channel a status link that is not `https://` is null.
    pub fn context(&self, payload: &Value, lang: Lang, channel: Channel) -> Value {
        let mut m = match payload {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        m.entry(STATUS_URL.to_owned()).or_insert(Value::Null);
        // The app IO opens only https:// links: a portal served over plain http (a test set-up)
        // gives an IO message no status link rather than one the gate must refuse.
        if channel == Channel::Io
            && m.get(STATUS_URL)
                .and_then(Value::as_str)
                .is_some_and(|u| !u.starts_with("https://"))
        {
            m.insert(STATUS_URL.to_owned(), Value::Null);
        }
        // The same for the comune's pages linked from every footer.
        let link = |u: &Option<String>| match u {
            Some(u) if channel != Channel::Io || u.starts_with("https://") => {
                Value::String(u.clone())
            }
            _ => Value::Null,
        };
        m.entry(ACCESS_CODE.to_owned()).or_insert(Value::Null);
        m.entry(SURVEY.to_owned()).or_insert(Value::Bool(false));
        m.insert("comune".to_owned(), Value::String(self.comune.clone()));
        m.insert("lang".to_owned(), Value::String(lang_str(lang).to_owned()));
        m.insert(
            "channel".to_owned(),
            Value::String(channel.as_str().to_owned()),
        );
        m.insert(
            "urp".to_owned(),
            serde_json::json!({
                "phone": self.urp_phone,
                "email": self.urp_email,
                "hours": match lang { Lang::It => &self.urp_hours_it, Lang::En => &self.urp_hours_en },
                "privacy_url": link(&self.links.privacy_url),
                "accessibility_url": link(&self.links.accessibility_url),
                "complaint_url": link(&self.links.complaint_url),
                "complaint_email": self.links.complaint_email,
            }),
        );
        Value::Object(m)
    }
}

/// An SMS as it will go out, with its cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmsPreview {
    pub text: String,
    #[serde(flatten)]
    pub budget: SmsBudget,
    pub max_parts: u32,
}

/// A message in the app IO as it will go out, and as the app shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IoPreview {
    pub subject: String,
    pub markdown: String,
    /// The Markdown as the app renders it ([`io::to_html`]), inside the HTML allow-list.
    pub html: String,
}

/// What a template gives for one context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preview {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub sms: Option<SmsPreview>,
    /// Citizen templates with IO parts only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io: Option<IoPreview>,
}

/// A message rendered for the outbox: what was sent, and which version wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedMessage {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    /// `cittadino/violazione/it`.
    pub template: String,
    /// The version rendered with (0: the bundled default).
    pub version: i64,
    /// Files sent with the e-mail (the monthly report's CSV). Absent from the stored words of
    /// every other message, which keep their exact bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<StoredAttachment>,
}

/// The appointment's calendar file (`appuntamento.ics`) for an e-mail or PEC notice whose
/// payload carries a `calendar` event (the engine's appointment notices), with its title and
/// description in the citizen's words (`words`, from the template partials); nothing otherwise.
pub fn calendar_attachment(
    channel: Channel,
    payload: &Value,
    words: Option<(String, String)>,
) -> Vec<StoredAttachment> {
    use messo_core::ics::{Event, Method, content_type, render};
    if !matches!(channel, Channel::Email | Channel::Pec) {
        return Vec::new();
    }
    let c = &payload["calendar"];
    let text = |k: &str| c[k].as_str().map(str::to_owned);
    let time = |k: &str| {
        c[k].as_str()
            .and_then(|t| crate::time::Timestamp::parse_rfc3339(t).ok())
    };
    let method = match c["method"].as_str() {
        Some("PUBLISH") => Method::Publish,
        Some("CANCEL") => Method::Cancel,
        _ => return Vec::new(),
    };
    let Some((summary, description)) = words else {
        return Vec::new();
    };
    let event = (|| {
        Some(Event {
            uid: text("uid")?,
            sequence: u32::try_from(c["sequence"].as_u64()?).ok()?,
            method,
            stamp: time("stamp")?,
            starts_at: time("starts_at")?,
            ends_at: time("ends_at")?,
            summary,
            location: text("location")?,
            description,
            organizer: text("organizer"),
        })
    })();
    event.map_or_else(Vec::new, |e| {
        vec![StoredAttachment::new(
            "appuntamento.ics",
            &content_type(method),
            render(&e).as_bytes(),
        )]
    })
}

/// A file kept with a message's words: its name, media type and bytes in base64 (standard
/// alphabet, padded), so the words stay one JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAttachment {
    pub name: String,
    pub content_type: String,
    pub base64: String,
}

impl StoredAttachment {
    /// `data` kept under `name` as `content_type`.
    pub fn new(name: &str, content_type: &str, data: &[u8]) -> StoredAttachment {
        use base64::Engine;
        StoredAttachment {
            name: name.to_owned(),
            content_type: content_type.to_owned(),
            base64: base64::engine::general_purpose::STANDARD.encode(data),
        }
    }

    /// The file as a channel sends it, or `None` when the stored bytes are not base64.
    pub fn decode(&self) -> Option<messo_core::delivery::Attachment> {
        use base64::Engine;
        let data = base64::engine::general_purpose::STANDARD
            .decode(&self.base64)
            .ok()?;
        Some(messo_core::delivery::Attachment {
            name: self.name.clone(),
            content_type: self.content_type.clone(),
            data,
        })
    }
}

/// Why a message could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct RenderFailure {
    pub key: String,
    pub message: String,
}

/// The version recorded for a message sent with the emergency wording (no template fitted).
pub const EMERGENCY_VERSION: i64 = -2;

/// The failure of rendering a message for the app IO with a template that has no IO parts.
pub const NO_IO_PART: &str = "no io part";

/// The live version of one template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    pub key: Key,
    pub version: i64,
    pub content: Content,
}

fn name(key: &Key, part: Part) -> String {
    format!("{key}#{}", part.as_str())
}

/// Registries over the same templates, one per way of escaping values: none (plain text), HTML
/// (HTML bodies), Markdown (IO bodies, [`io::escape_markdown`]) and one line (IO subjects,
/// [`io::escape_line`]).
#[derive(Clone)]
struct Registries {
    plain: Handlebars<'static>,
    html: Handlebars<'static>,
    markdown: Handlebars<'static>,
    line: Handlebars<'static>,
    partials: Arc<guard::Partials>,
}

/// What [`Registries::add`] found: problems that keep a part out of the registry, and problems
/// that refuse the edit but still let its parts render (so the rendered check sees them too).
#[derive(Default)]
struct Added {
    fatal: Vec<Problem>,
    lint: Vec<Problem>,
}

/// Why a render gave no text.
#[derive(Debug)]
enum Failure {
    Render(RenderError),
    /// The output passed [`guard::MAX_OUTPUT_BYTES`].
    TooLarge,
    /// The engine panicked; the panic was caught.
    Panicked,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Render(e) => write!(f, "{e}"),
            Failure::TooLarge => write!(
                f,
                "the output passes {} KiB",
                guard::MAX_OUTPUT_BYTES / 1024
            ),
            Failure::Panicked => write!(f, "the template engine panicked"),
        }
    }
}

/// A writer that refuses to grow past `limit` bytes.
struct Capped {
    buf: Vec<u8>,
    limit: usize,
    overflow: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + b.len() > self.limit {
            self.overflow = true;
            return Err(std::io::Error::other("output limit"));
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Registries {
    fn base(partials: &BTreeMap<String, String>, working_day_s: i64) -> Registries {
        let mut plain = Handlebars::new();
        plain.set_strict_mode(true);
        plain.register_escape_fn(handlebars::no_escape);
        helpers::register(&mut plain, working_day_s);
        let mut html = Handlebars::new();
        html.set_strict_mode(true);
        helpers::register(&mut html, working_day_s);
        let mut markdown = Handlebars::new();
        markdown.set_strict_mode(true);
        markdown.register_escape_fn(io::escape_markdown);
        helpers::register(&mut markdown, working_day_s);
        let mut line = Handlebars::new();
        line.set_strict_mode(true);
        line.register_escape_fn(io::escape_line);
        helpers::register(&mut line, working_day_s);
        for reg in [&mut plain, &mut html, &mut markdown, &mut line] {
            // Not in the allow-list of the walk either; gone, so no spelling reaches them.
            reg.unregister_helper("log");
            reg.unregister_helper("raw");
        }
        let (compiled, refused) = guard::Partials::new(partials);
        for (name, why) in refused {
            // A packaging bug (the catalog test catches it): every template using it is refused.
            tracing::error!(partial = %name, reason = %why, "a bundled partial is refused");
        }
        for (name, t) in compiled.iter() {
            for reg in [&mut plain, &mut html, &mut markdown, &mut line] {
                reg.register_template(name, t.clone());
            }
        }
        Registries {
            plain,
            html,
            markdown,
            line,
            partials: Arc::new(compiled),
        }
    }

    fn registry(&self, part: Part) -> &Handlebars<'static> {
        match part {
            Part::Html => &self.html,
            Part::IoMarkdown => &self.markdown,
            Part::IoSubject => &self.line,
            Part::Subject | Part::Text | Part::Sms => &self.plain,
        }
    }

    fn registry_mut(&mut self, part: Part) -> &mut Handlebars<'static> {
        match part {
            Part::Html => &mut self.html,
            Part::IoMarkdown => &mut self.markdown,
            Part::IoSubject => &mut self.line,
            Part::Subject | Part::Text | Part::Sms => &mut self.plain,
        }
    }

    fn has(&self, key: &Key, part: Part) -> bool {
        self.registry(part).has_template(&name(key, part))
    }

    /// Compiles and checks every part of `c` (see [`guard`]) and registers those that pass.
    fn add(&mut self, key: &Key, c: &Content) -> Added {
        let mut added = Added::default();
        for part in Part::ALL {
            let Some(src) = part.of(c) else { continue };
            let t = match guard::compile(src) {
                Ok(t) => t,
                Err(guard::CompileFailure::Syntax(e)) => {
                    added.fatal.push(compile_problem(part, &e));
                    continue;
                }
                Err(guard::CompileFailure::Refused(r)) => {
                    added.fatal.push(refusal_problem(part, r));
                    continue;
                }
            };
            match guard::check(&t, part, &self.partials) {
                Ok(lints) => {
                    added
                        .lint
                        .extend(lints.into_iter().map(|r| refusal_problem(part, r)));
                    self.registry_mut(part)
                        .register_template(&name(key, part), t);
                }
                Err(r) => {
                    guard::dismantle(t);
                    added.fatal.push(refusal_problem(part, r));
                }
            }
        }
        added
    }

    /// Renders one part with `ctx`, at most [`guard::MAX_OUTPUT_BYTES`] long; a panic of the
    /// engine is caught and reported as a failure.
    fn render(&self, key: &Key, part: Part, ctx: &Value) -> Result<String, Failure> {
        let reg = self.registry(part);
        let template = name(key, part);
        let mut out = Capped {
            buf: Vec::new(),
            limit: guard::MAX_OUTPUT_BYTES,
            overflow: false,
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            reg.render_to_write(&template, ctx, &mut out)
        }));
        match r {
            Err(_) => Err(Failure::Panicked),
            Ok(Err(_)) if out.overflow => Err(Failure::TooLarge),
            Ok(Err(e)) => Err(Failure::Render(e)),
            Ok(Ok(())) => Ok(String::from_utf8(out.buf)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())),
        }
    }
}

/// [`html::verify`], with a panic of the parser taken as a refusal.
fn verify_html(s: &str) -> Result<(), html::Finding> {
    std::panic::catch_unwind(|| html::verify(s)).unwrap_or_else(|_| {
        Err(html::Finding {
            kind: "unreadable",
            message: "il corpo HTML non può essere letto dal controllo".to_owned(),
        })
    })
}

fn refusal_problem(part: Part, r: guard::Refusal) -> Problem {
    Problem {
        part,
        line: r.line,
        column: r.column,
        sample: None,
        message: r.message,
    }
}

fn compile_problem(part: Part, e: &TemplateError) -> Problem {
    let (line, column) = e.pos().map_or((None, None), |(l, c)| (Some(l), Some(c)));
    let message = match e.reason() {
        handlebars::TemplateErrorReason::MismatchingClosedHelper(open, close) => {
            format!("il blocco «{open}» è chiuso da «{close}»")
        }
        handlebars::TemplateErrorReason::InvalidSyntax(_) => {
            "sintassi non valida: parentesi graffe non bilanciate, o un blocco aperto e mai chiuso \
             (o annidamento troppo profondo)"
                .to_owned()
        }
        other => format!("modello non valido: {other}"),
    };
    Problem {
        part,
        line,
        column,
        sample: None,
        message,
    }
}

/// Why an SMS over its budget of parts costs what it does: its length, its encoding and the
/// characters that force UCS-2.
fn over_budget(s: &SmsPreview) -> String {
    let costly: Vec<String> = s
        .budget
        .costly
        .iter()
        .map(|c| format!("«{}» ({})", c.ch, c.name))
        .collect();
    let why = if costly.is_empty() {
        String::new()
    } else {
        format!(
            "; questi caratteri lo fanno codificare in UCS-2 (70 caratteri per parte): {}",
            costly.join(", ")
        )
    };
    format!(
        "l'SMS occupa {} parti ({} {}), il massimo per questo avviso è {}{why}",
        s.budget.parts,
        s.budget.units,
        if s.budget.encoding == sms::Encoding::Gsm7 {
            "caratteri GSM-7"
        } else {
            "unità UCS-2"
        },
        s.max_parts
    )
}

fn render_problem(part: Part, sample: Option<usize>, f: &Failure) -> Problem {
    let e = match f {
        Failure::Render(e) => e,
        Failure::TooLarge => {
            return Problem {
                part,
                line: None,
                column: None,
                sample,
                message: format!(
                    "il testo risultante supera {} KiB",
                    guard::MAX_OUTPUT_BYTES / 1024
                ),
            };
        }
        Failure::Panicked => {
            return Problem {
                part,
                line: None,
                column: None,
                sample,
                message: "il modello non può essere composto (errore interno del motore dei \
                          modelli)"
                    .to_owned(),
            };
        }
    };
    let message = match e.reason() {
        RenderErrorReason::MissingVariable(Some(v)) => {
            format!("la variabile «{v}» non esiste per questo messaggio")
        }
        RenderErrorReason::MissingVariable(None) => {
            "una variabile usata non esiste per questo messaggio".to_owned()
        }
        RenderErrorReason::HelperNotFound(h) => format!("funzione sconosciuta «{h}»"),
        RenderErrorReason::PartialNotFound(p) => format!("il modello parziale «{p}» non esiste"),
        RenderErrorReason::ParamNotFoundForIndex(h, _)
        | RenderErrorReason::ParamNotFoundForName(h, _) => {
            format!("alla funzione «{h}» manca un argomento, o l'argomento non esiste")
        }
        RenderErrorReason::ParamTypeMismatchForName(h, _, want) => {
            format!("la funzione «{h}» vuole {want}")
        }
        RenderErrorReason::TemplateError(t) => return compile_problem(part, t),
        other => other.to_string(),
    };
    Problem {
        part,
        line: e.line_no,
        column: e.column_no,
        sample,
        message,
    }
}

/// `content` with the IO parts of `default` when it has none: a version stored before the
/// notice had IO parts keeps the default's IO words.
pub fn with_default_io(content: &Content, default: &Content) -> Content {
    let mut c = content.clone();
    if c.io_subject.is_none() && c.io_markdown.is_none() {
        c.io_subject.clone_from(&default.io_subject);
        c.io_markdown.clone_from(&default.io_markdown);
    }
    c
}

/// A subject is one line of plain text: no line break and nothing that reads as an HTML tag
/// (it is not HTML, so this is a plain-text rule on what the editor wrote).
fn subject_markup(src: &str) -> Option<(usize, usize, String)> {
    let at = |i: usize| {
        let before = &src[..i];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    };
    if let Some(i) = src.find('\n') {
        let (l, c) = at(i);
        return Some((l, c, "l'oggetto deve stare su una riga".to_owned()));
    }
    let bytes = src.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'<'
            && bytes
                .get(i + 1)
                .is_some_and(|n| n.is_ascii_alphabetic() || *n == b'/' || *n == b'!')
        {
            let (l, c) = at(i);
            return Some((
                l,
                c,
                "l'oggetto di una e-mail è testo semplice: niente tag HTML".to_owned(),
            ));
        }
    }
    None
}

/// The paths (JSON pointers) of the string and null values of `v`, `status_url` aside (Messo
/// writes it, signed): the values a hostile one replaces in turn.
fn hostile_leaves(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo: Vec<(String, &Value)> = vec![(String::new(), v)];
    while let Some((path, v)) = todo.pop() {
        match v {
            Value::String(_) | Value::Null if !path.is_empty() => out.push(path),
            Value::Object(m) => {
                for (k, v) in m {
                    if path.is_empty() && k == STATUS_URL {
                        continue;
                    }
                    let k = k.replace('~', "~0").replace('/', "~1");
                    todo.push((format!("{path}/{k}"), v));
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    todo.push((format!("{path}/{i}"), v));
                }
            }
            _ => {}
        }
    }
    out.sort();
    out
}

/// A JSON pointer written as the template writes the variable: `references.0.name`.
fn dotted(pointer: &str) -> String {
    pointer
        .trim_start_matches('/')
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".")
}

/// The compiled live set: every template's live version, and the defaults beside them.
struct Set {
    live: Registries,
    versions: HashMap<Key, (i64, Content)>,
}

/// The templates the daemon renders with: the catalog, the settings, and the live set, which
/// an admin's publish replaces at once (readers keep the set they started with).
pub struct Templates {
    catalog: Catalog,
    settings: Settings,
    base: Registries,
    defaults: Registries,
    set: RwLock<Arc<Set>>,
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Templates")
            .field("templates", &self.catalog.defaults.len())
            .finish_non_exhaustive()
    }
}

impl Templates {
    /// The templates with the bundled defaults live.
    pub fn new(catalog: Catalog, settings: Settings) -> Templates {
        let base = Registries::base(&catalog.partials, settings.working_day_s);
        let mut defaults = base.clone();
        let mut versions = HashMap::new();
        for (key, d) in &catalog.defaults {
            defaults.add(key, &d.content);
            versions.insert(key.clone(), (0, d.content.clone()));
        }
        let set = Set {
            live: defaults.clone(),
            versions,
        };
        Templates {
            catalog,
            settings,
            base,
            defaults,
            set: RwLock::new(Arc::new(set)),
        }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The title and description of an appointment's calendar event in `lang`: the bundled
    /// partials `calendario_titolo_<lang>` and `calendario_descrizione_<lang>` rendered with the
    /// message's context (strict: a missing value gives no calendar file, never a half one).
    pub fn calendar_words(&self, lang: Lang, ctx: &Value) -> Option<(String, String)> {
        Some((
            partial_line("calendario_titolo", lang, ctx)?,
            partial_line("calendario_descrizione", lang, ctx)?,
        ))
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn current(&self) -> Arc<Set> {
        self.set
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The live version number and content of `key` (0: the bundled default).
    pub fn live(&self, key: &Key) -> Option<(i64, Content)> {
        self.current().versions.get(key).cloned()
    }

    /// Makes `lives` the live versions (templates not named keep theirs). Each must pass the
    /// whole gate ([`Templates::check`]) first, whoever stored it and whenever: one that does not
    /// is skipped, so the version before (at start, the bundled default) stays live; its key and
    /// the reasons are returned for the caller to log.
    pub fn install(&self, lives: &[Live]) -> Vec<(Key, String)> {
        let old = self.current();
        let mut versions = old.versions.clone();
        let mut refused = Vec::new();
        for l in lives {
            let Some(default) = self.catalog.defaults.get(&l.key) else {
                refused.push((l.key.clone(), "no such template".to_owned()));
                continue;
            };
            let l = &Live {
                content: with_default_io(&l.content, &default.content),
                ..l.clone()
            };
            if old.versions.get(&l.key) == Some(&(l.version, l.content.clone())) {
                continue; // live already, so it passed the gate when it was installed
            }
            match self.check(&l.key, &l.content) {
                Ok(_) => {
                    versions.insert(l.key.clone(), (l.version, l.content.clone()));
                }
                Err(problems) => {
                    let why = problems
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ");
                    refused.push((l.key.clone(), why));
                }
            }
        }
        let mut live = self.base.clone();
        for (key, (_, content)) in &versions {
            live.add(key, content);
        }
        *self.set.write().unwrap_or_else(PoisonError::into_inner) =
            Arc::new(Set { live, versions });
        refused
    }

    /// The template for `kind` to `audience` in `lang`: English falls back to Italian where
    /// there is no English version (the office's alerts).
    pub fn key_for(&self, audience: Audience, kind: &str, lang: Lang) -> Option<Key> {
        let k = Key::new(audience, kind, lang);
        if self.catalog.defaults.contains_key(&k) {
            return Some(k);
        }
        let it = Key::new(audience, kind, Lang::It);
        self.catalog.defaults.contains_key(&it).then_some(it)
    }

    fn sms_text(&self, raw: &str) -> String {
        let t = raw.trim();
        if self.settings.sms_plain_punctuation {
            sms::plain_punctuation(t)
        } else {
            t.to_owned()
        }
    }

    /// Renders a message's parts; an HTML body outside the allow-list ([`html`]) is a failure
    /// like any other, so it never goes out.
    fn render_with(
        &self,
        regs: &Registries,
        key: &Key,
        channel: Channel,
        ctx: &Value,
    ) -> Result<(String, String, Option<String>), String> {
        let fail = |part: Part, f: Failure| format!("{}: {f}", part.as_str());
        if channel == Channel::Io {
            // IO gets its own words or none: never the e-mail's.
            if !regs.has(key, Part::IoSubject) || !regs.has(key, Part::IoMarkdown) {
                return Err(NO_IO_PART.to_owned());
            }
            let subject = regs
                .render(key, Part::IoSubject, ctx)
                .map_err(|f| fail(Part::IoSubject, f))?;
            let markdown = regs
                .render(key, Part::IoMarkdown, ctx)
                .map_err(|f| fail(Part::IoMarkdown, f))?;
            let (subject, markdown) = (io::subject(&subject), io::markdown(&markdown));
            // The refusals name the construct, never the words (they may be a citizen's).
            let refused = io::check(&subject, &markdown);
            if !refused.is_empty() {
                return Err(refused
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "));
            }
            return Ok((subject, markdown, None));
        }
        if channel == Channel::Sms {
            let text = regs
                .render(key, Part::Sms, ctx)
                .map_err(|f| fail(Part::Sms, f))?;
            return Ok((String::new(), self.sms_text(&text), None));
        }
        let subject = regs
            .render(key, Part::Subject, ctx)
            .map_err(|f| fail(Part::Subject, f))?;
        let text = regs
            .render(key, Part::Text, ctx)
            .map_err(|f| fail(Part::Text, f))?;
        let html = if regs
            .registry(Part::Html)
            .has_template(&name(key, Part::Html))
        {
            let h = regs
                .render(key, Part::Html, ctx)
                .map_err(|f| fail(Part::Html, f))?;
            // Only the kind of finding is logged: the value may be a citizen's words.
            verify_html(&h).map_err(|f| format!("html: outside the allow-list ({})", f.kind))?;
            Some(h)
        } else {
            None
        };
        Ok((subject.trim().to_owned(), tidy(&text), html))
    }

    /// Renders one outbox message with the live version; if that fails on this message's
    /// payload (or its HTML falls outside the allow-list), with the bundled default (and says
    /// so in the result's version, 0); if that fails too, with the emergency wording. It never
    /// panics: the engine's panics are caught.
    pub fn render_message(
        &self,
        audience: Audience,
        kind: Kind,
        lang: Lang,
        channel: Channel,
        payload: &Value,
    ) -> Result<RenderedMessage, RenderFailure> {
        if channel == Channel::Voice {
            return self.render_call(kind, lang, payload);
        }
        let key = self
            .key_for(audience, kind.as_str(), lang)
            .ok_or_else(|| RenderFailure {
                key: format!("{}/{kind}/{}", audience.as_str(), lang_str(lang)),
                message: "no template for this notice".to_owned(),
            })?;
        if channel == Channel::Io
            && !self
                .catalog
                .defaults
                .get(&key)
                .is_some_and(|d| d.content.has_io())
        {
            // A notice the app IO does not carry: a failure for the caller to route around,
            // not the e-mail's words nor the emergency wording.
            return Err(RenderFailure {
                key: key.to_string(),
                message: format!("{NO_IO_PART}: this notice is not sent in the app IO"),
            });
        }
        let asks = self.settings.survey
            && audience == Audience::Cittadino
            && kind == Kind::Chiusura
            && payload.is_object();
        let payload = if asks {
            let mut p = payload.clone();
            if let Some(m) = p.as_object_mut() {
                m.insert(SURVEY.to_owned(), Value::Bool(true));
            }
            std::borrow::Cow::Owned(p)
        } else {
            std::borrow::Cow::Borrowed(payload)
        };
        let ctx = self.settings.context(&payload, key.lang, channel);
        let set = self.current();
        let version = set.versions.get(&key).map_or(0, |(v, _)| *v);
        let files = if payload["calendar"].is_object() {
            calendar_attachment(channel, &payload, self.calendar_words(key.lang, &ctx))
        } else {
            Vec::new()
        };
        let done =
            |(subject, text, html): (String, String, Option<String>), version| RenderedMessage {
                subject,
                text,
                html,
                template: key.to_string(),
                version,
                attachments: files.clone(),
            };
        let live_err = match self.render_with(&set.live, &key, channel, &ctx) {
            Ok(r) => return Ok(done(r, version)),
            Err(e) => e,
        };
        if version != 0 {
            tracing::error!(template = %key, version, error = %live_err,
                "the live template failed on a real message; the default is used");
            match self.render_with(&self.defaults, &key, channel, &ctx) {
                Ok(r) => return Ok(done(r, 0)),
                Err(e) => tracing::error!(template = %key, error = %e, "the default failed too"),
            }
        }
        // Neither version fits this message's data (a payload from an older release, say):
        // the citizen still gets a short, correct notice rather than nothing.
        tracing::error!(template = %key, error = %live_err,
            "a message is sent with the emergency wording");
        Ok(done(
            self.emergency(key.lang, channel, &payload),
            EMERGENCY_VERSION,
        ))
    }

    /// A short notice that needs nothing but the ticket number (when there is one).
    fn emergency(
        &self,
        lang: Lang,
        channel: Channel,
        payload: &Value,
    ) -> (String, String, Option<String>) {
        let s = &self.settings;
        let number = payload["number"].as_str().filter(|n| !n.is_empty());
        let (subject, body) = match (lang, number) {
            (Lang::It, Some(n)) => (
                format!("Richiesta {n}: aggiornamento — {}", s.comune),
                format!(
                    "c'è un aggiornamento sulla sua richiesta {n}. Per i dettagli chiami l'URP al {} ({}) o scriva a {}.",
                    s.urp_phone, s.urp_hours_it, s.urp_email
                ),
            ),
            (Lang::It, None) => (
                format!("Comunicazione dell'URP — {}", s.comune),
                format!(
                    "l'URP ha una comunicazione per lei. Per i dettagli chiami il {} ({}) o scriva a {}.",
                    s.urp_phone, s.urp_hours_it, s.urp_email
                ),
            ),
            (Lang::En, Some(n)) => (
                format!("Request {n}: update — {}", s.comune),
                format!(
                    "there is an update on your request {n}. For details call the help desk on {} ({}) or write to {}.",
                    s.urp_phone, s.urp_hours_en, s.urp_email
                ),
            ),
            (Lang::En, None) => (
                format!("A message from the help desk — {}", s.comune),
                format!(
                    "the help desk has a message for you. For details call {} ({}) or write to {}.",
                    s.urp_phone, s.urp_hours_en, s.urp_email
                ),
            ),
        };
        let body = match (payload[STATUS_URL].as_str(), lang) {
            (Some(url), Lang::It) => format!("{body} Stato della richiesta: {url}"),
            (Some(url), Lang::En) => format!("{body} Your request's status: {url}"),
            (None, _) => body,
        };
        if channel == Channel::Sms {
            return (
                String::new(),
                self.sms_text(&format!("{}: {body}", s.comune)),
                None,
            );
        }
        let (greeting, closing) = match lang {
            Lang::It => ("Gentile cittadina, gentile cittadino,", "Cordiali saluti"),
            Lang::En => ("Dear citizen,", "Kind regards"),
        };
        if channel == Channel::Io {
            return self.emergency_io(lang, &subject, number, payload, greeting, closing);
        }
        (
            subject,
            format!("{greeting}\n\n{body}\n\n{closing}\nURP — {}\n", s.comune),
            None,
        )
    }

    /// The emergency wording for the app IO: a subject within its bounds and a Markdown body
    /// whose every value is escaped; the status link only when it is an `https://` one.
    fn emergency_io(
        &self,
        lang: Lang,
        subject: &str,
        number: Option<&str>,
        payload: &Value,
        greeting: &str,
        closing: &str,
    ) -> (String, String, Option<String>) {
        let s = &self.settings;
        let md = io::escape_markdown;
        let subject: String = io::escape_line(subject)
            .trim()
            .chars()
            .take(io::SUBJECT_MAX)
            .collect();
        let subject = if subject.chars().count() < io::SUBJECT_MIN {
            match lang {
                Lang::It => "Comunicazione dell'URP".to_owned(),
                Lang::En => "A message from the help desk".to_owned(),
            }
        } else {
            subject
        };
        let (hours, body) = match (lang, number) {
            (Lang::It, Some(n)) => (
                &s.urp_hours_it,
                format!("c'è un aggiornamento sulla sua richiesta **{}**.", md(n)),
            ),
            (Lang::It, None) => (
                &s.urp_hours_it,
                "l'URP ha una comunicazione per lei.".to_owned(),
            ),
            (Lang::En, Some(n)) => (
                &s.urp_hours_en,
                format!("there is an update on your request **{}**.", md(n)),
            ),
            (Lang::En, None) => (
                &s.urp_hours_en,
                "the help desk has a message for you.".to_owned(),
            ),
        };
        let contact = match lang {
            Lang::It => format!(
                "Per i dettagli chiami l'URP al {} ({}) o scriva a {}.",
                md(&s.urp_phone),
                md(hours),
                md(&s.urp_email)
            ),
            Lang::En => format!(
                "For details call the help desk on {} ({}) or write to {}.",
                md(&s.urp_phone),
                md(hours),
                md(&s.urp_email)
            ),
        };
        let link = payload[STATUS_URL]
            .as_str()
            .filter(|u| u.starts_with("https://") && !u.contains(char::is_whitespace))
            .map(|u| match lang {
                Lang::It => format!("\n\n[Stato della richiesta]({})", md(u)),
                Lang::En => format!("\n\n[Your request's status]({})", md(u)),
            })
            .unwrap_or_default();
        let text = format!(
            "{greeting}\n\n{body} {contact}{link}\n\n{closing}\\\nURP — {}",
            md(&s.comune)
        );
        (subject, text, None)
    }

    /// Renders `content` as template `key` with `payload` (a sample or a real ticket's),
    /// without touching the live set. The edit passes the whole gate ([`Templates::check`])
    /// first, and the HTML rendered for `payload` the allow-list.
    pub fn preview(
        &self,
        key: &Key,
        content: &Content,
        payload: &Value,
    ) -> Result<Preview, Vec<Problem>> {
        let (regs, _) = self.gate(key, content)?;
        self.preview_compiled(&regs, key, content, payload, None)
    }

    fn preview_compiled(
        &self,
        regs: &Registries,
        key: &Key,
        content: &Content,
        payload: &Value,
        sample: Option<usize>,
    ) -> Result<Preview, Vec<Problem>> {
        let mut out = self.render_parts(regs, key, content, payload, sample)?;
        let mut problems = Vec::new();
        let subject = out.remove(&Part::Subject).unwrap_or_default();
        let subject = subject.trim().to_owned();
        let problem = |part: Part, message: String| Problem {
            part,
            line: None,
            column: None,
            sample,
            message,
        };
        if subject.is_empty() {
            problems.push(problem(Part::Subject, "l'oggetto risulta vuoto".to_owned()));
        }
        if subject.contains('\n') {
            problems.push(problem(
                Part::Subject,
                "l'oggetto risulta su più righe".to_owned(),
            ));
        }
        let text = tidy(&out.remove(&Part::Text).unwrap_or_default());
        if text.trim().is_empty() {
            problems.push(problem(Part::Text, "il testo risulta vuoto".to_owned()));
        }
        if key.audience == Audience::Telefono
            && let Some(why) = unspeakable(&text)
        {
            problems.push(problem(Part::Text, why));
        }
        if let Some(h) = out.get(&Part::Html) {
            if h.trim().is_empty() {
                problems.push(problem(
                    Part::Html,
                    "il corpo HTML risulta vuoto".to_owned(),
                ));
            } else if let Err(why) = verify_html(h) {
                problems.push(problem(Part::Html, format!("il corpo HTML contiene {why}")));
            }
        }
        let sms = out.remove(&Part::Sms).map(|raw| {
            let text = self.sms_text(&raw);
            let budget = sms::budget(&text);
            SmsPreview {
                text,
                budget,
                max_parts: self.settings.max_parts(&key.kind),
            }
        });
        if let Some(s) = &sms {
            if s.text.is_empty() {
                problems.push(problem(Part::Sms, "l'SMS risulta vuoto".to_owned()));
            } else if s.budget.parts > s.max_parts {
                problems.push(problem(Part::Sms, over_budget(s)));
            }
        }
        let io = match (out.remove(&Part::IoSubject), out.remove(&Part::IoMarkdown)) {
            (Some(s), Some(m)) => {
                let (subject, markdown) = (io::subject(&s), io::markdown(&m));
                for r in io::check(&subject, &markdown) {
                    let part = match r.part() {
                        io::IoPart::Subject => Part::IoSubject,
                        io::IoPart::Markdown => Part::IoMarkdown,
                    };
                    problems.push(problem(part, r.italian()));
                }
                // Built from the subset only; checked all the same, and escaped if it ever fails.
                let html = io::to_html(&markdown);
                let html = if verify_html(&html).is_ok() {
                    html
                } else {
                    let mut escaped = String::from("<pre>");
                    for c in markdown.chars() {
                        match c {
                            '&' => escaped.push_str("&amp;"),
                            '<' => escaped.push_str("&lt;"),
                            '>' => escaped.push_str("&gt;"),
                            c => escaped.push(c),
                        }
                    }
                    escaped.push_str("</pre>");
                    escaped
                };
                Some(IoPreview {
                    subject,
                    markdown,
                    html,
                })
            }
            _ => None,
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Preview {
            subject,
            text,
            html: out.remove(&Part::Html),
            sms,
            io,
        })
    }

    /// Each part `content` has, rendered as template `key` with `payload`; every part that
    /// does not render is a problem.
    fn render_parts(
        &self,
        regs: &Registries,
        key: &Key,
        content: &Content,
        payload: &Value,
        sample: Option<usize>,
    ) -> Result<HashMap<Part, String>, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut out: HashMap<Part, String> = HashMap::new();
        for part in Part::ALL {
            if part.of(content).is_none() {
                continue;
            }
            let channel = part.channel();
            let ctx =
                self.settings
                    .context(&self.settings.with_example_link(payload), key.lang, channel);
            match regs.render(key, part, &ctx) {
                Ok(s) => {
                    out.insert(part, s);
                }
                Err(e) => problems.push(render_problem(part, sample, &e)),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(out)
    }

    /// The gate of every edit: `content` may become template `key`'s live version only if
    /// this returns the previews (one per sample context).
    pub fn check(&self, key: &Key, content: &Content) -> Result<Vec<Preview>, Vec<Problem>> {
        self.gate(key, content).map(|(_, previews)| previews)
    }

    /// The gate, keeping the compiled edit for a preview:
    ///
    /// 1. the parts a notice needs are there, and a subject is one line of plain text;
    /// 2. each part compiles and passes the walk of [`guard`] (no recursion, bounded nesting,
    ///    known partials and helpers, escaped values in HTML);
    /// 3. every part renders, within [`guard::MAX_OUTPUT_BYTES`], with every sample context;
    ///    the subject and text are not empty, every SMS fits its budget;
    /// 4. the HTML body rendered with every sample, and with every sample value replaced in
    ///    turn by [`html::HOSTILE`] (and all of them by [`html::hostile_long`]), stays inside
    ///    the allow-list of [`html`]. A replacement the template cannot render (a date helper
    ///    given text) is skipped: a real value of that kind fails the same way, and such a
    ///    message is sent with the default wording instead;
    /// 5. the IO parts (both or neither, as the default has them) render with every sample
    ///    within the bounds of [`io::check`], and the body stays inside the app's Markdown
    ///    subset with every sample value replaced in turn by each of [`HOSTILE_MARKDOWN`].
    fn gate(
        &self,
        key: &Key,
        content: &Content,
    ) -> Result<(Registries, Vec<Preview>), Vec<Problem>> {
        let Some(default) = self.catalog.defaults.get(key) else {
            return Err(vec![Problem {
                part: Part::Subject,
                line: None,
                column: None,
                sample: None,
                message: format!("il modello {key} non esiste"),
            }]);
        };
        let mut problems = Vec::new();
        // The channels a notice goes through are fixed: an edit cannot drop (or add) a part.
        for part in [Part::Html, Part::Sms, Part::IoSubject, Part::IoMarkdown] {
            match (part.of(&default.content), part.of(content)) {
                (Some(_), None) => problems.push(Problem {
                    part,
                    line: None,
                    column: None,
                    sample: None,
                    message: format!("questo avviso ha bisogno della parte {}", part.as_str()),
                }),
                (None, Some(_)) => problems.push(Problem {
                    part,
                    line: None,
                    column: None,
                    sample: None,
                    message: format!("questo avviso non ha la parte {}", part.as_str()),
                }),
                _ => {}
            }
        }
        for part in [Part::Subject, Part::IoSubject] {
            if let Some((line, column, message)) = part.of(content).and_then(subject_markup) {
                problems.push(Problem {
                    part,
                    line: Some(line),
                    column: Some(column),
                    sample: None,
                    message,
                });
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut regs = self.base.clone();
        let added = regs.add(key, content);
        if !added.fatal.is_empty() {
            let mut problems = added.fatal;
            problems.extend(added.lint);
            return Err(problems);
        }
        let mut previews = Vec::new();
        let mut problems = Vec::new();
        for (i, sample) in default.samples.iter().enumerate() {
            match self.preview_compiled(&regs, key, content, sample, Some(i)) {
                Ok(p) => previews.push(p),
                Err(mut ps) => problems.append(&mut ps),
            }
        }
        if content.html.is_some() && problems.is_empty() {
            problems.extend(self.hostile_rounds(&regs, key, &default.samples));
        }
        if content.io_markdown.is_some() && problems.is_empty() {
            problems.extend(self.hostile_io_rounds(&regs, key, &default.samples));
        }
        let mut problems = [added.lint, problems].concat();
        // The same problem on every sample is said once.
        problems.dedup_by(|a, b| a.part == b.part && a.message == b.message && a.line == b.line);
        if problems.is_empty() {
            Ok((regs, previews))
        } else {
            Err(problems)
        }
    }

    /// Step 5 of the gate: the IO body with each sample value replaced in turn by
    /// each of [`HOSTILE_MARKDOWN`] stays inside the app's subset (its length aside).
    fn hostile_io_rounds(&self, regs: &Registries, key: &Key, samples: &[Value]) -> Vec<Problem> {
        let mut problems: Vec<Problem> = Vec::new();
        let rounds = samples.iter().enumerate().flat_map(|(i, sample)| {
            hostile_leaves(sample).into_iter().flat_map(move |leaf| {
                HOSTILE_MARKDOWN
                    .iter()
                    .map(move |h| (i, sample, leaf.clone(), *h))
            })
        });
        for (i, sample, leaf, hostile) in rounds {
            let mut p = sample.clone();
            if let Some(v) = p.pointer_mut(&leaf) {
                *v = Value::String(hostile.to_owned());
            }
            let ctx =
                self.settings
                    .context(&self.settings.with_example_link(&p), key.lang, Channel::Io);
            let Ok(out) = regs.render(key, Part::IoMarkdown, &ctx) else {
                continue;
            };
            for r in io::check_markup(&io::markdown(&out)) {
                let message = format!(
                    "con il valore «{}» scritto da chi usa il servizio, {}: ogni valore va \
                     scritto con {{{{…}}}} e mai come indirizzo di un collegamento",
                    dotted(&leaf),
                    r.italian()
                );
                if !problems.iter().any(|p| p.message == message) {
                    problems.push(Problem {
                        part: Part::IoMarkdown,
                        line: None,
                        column: None,
                        sample: Some(i),
                        message,
                    });
                }
            }
        }
        problems
    }

    /// Step 4 of the gate: the HTML body with hostile values.
    fn hostile_rounds(&self, regs: &Registries, key: &Key, samples: &[Value]) -> Vec<Problem> {
        let mut problems: Vec<Problem> = Vec::new();
        let long = Value::String(html::hostile_long());
        for (i, sample) in samples.iter().enumerate() {
            let leaves = hostile_leaves(sample);
            let mut rounds: Vec<(String, Value)> = Vec::with_capacity(leaves.len() + 1);
            for leaf in &leaves {
                let mut p = sample.clone();
                if let Some(v) = p.pointer_mut(leaf) {
                    *v = Value::String(html::HOSTILE.to_owned());
                }
                rounds.push((format!("il valore «{}»", dotted(leaf)), p));
            }
            let mut all = sample.clone();
            for leaf in &leaves {
                if let Some(v) = all.pointer_mut(leaf) {
                    *v = long.clone();
                }
            }
            rounds.push(("tutti i valori".to_owned(), all));
            for (what, payload) in rounds {
                let ctx = self.settings.context(
                    &self.settings.with_example_link(&payload),
                    key.lang,
                    Channel::Email,
                );
                let Ok(out) = regs.render(key, Part::Html, &ctx) else {
                    continue;
                };
                if let Err(why) = verify_html(&out) {
                    let message = format!(
                        "con {what} scritto da chi usa il servizio il corpo HTML conterrebbe \
                         {why}: ogni valore va scritto con {{{{…}}}} e mai come indirizzo intero \
                         di un collegamento o di un'immagine"
                    );
                    if !problems.iter().any(|p| p.message == message) {
                        problems.push(Problem {
                            part: Part::Html,
                            line: None,
                            column: None,
                            sample: Some(i),
                            message,
                        });
                    }
                }
            }
        }
        problems
    }
}

/// Values that try every Markdown construct the app IO must not render from a citizen's words:
/// one with every construct, and a bare `javascript:` address (without spaces, it would be a
/// link's whole target if a template wrote a value there).
pub const HOSTILE_MARKDOWN: [&str; 2] = [
    "[clic](javascript:alert(1)) ![x](https://x.example/i.png) <b>x</b> <!-- c --> `c` &lt; \
     **b** _i_\n# titolo\n\n    codice\n> citazione\n| a | b |\n|---|---|",
    "javascript:alert(1)",
];

/// The longest text one prompt of the telephone answering may speak, in characters.
pub const MAX_SPOKEN_CHARS: usize = 1500;

/// Why a rendered `telefono` text cannot be spoken as it is, if it cannot: every provider's
/// text-to-speech reads plain text, so markup, SSML, links and symbols it would spell out are
/// refused, and so is a text too long to listen to.
pub fn unspeakable(text: &str) -> Option<String> {
    let n = text.chars().count();
    if n > MAX_SPOKEN_CHARS {
        return Some(format!(
            "il testo parlato è di {n} caratteri: al telefono al massimo {MAX_SPOKEN_CHARS}"
        ));
    }
    let lower = text.to_lowercase();
    if ["http://", "https://", "www."]
        .iter()
        .any(|u| lower.contains(u))
    {
        return Some(
            "il testo parlato contiene un indirizzo web: al telefono non si può seguire un \
             collegamento; indichi dove trovarlo a parole"
                .to_owned(),
        );
    }
    if let Some(c) = text.chars().find(|c| {
        matches!(
            c,
            '<' | '>' | '&' | '{' | '}' | '[' | ']' | '*' | '_' | '#' | '|' | '\\'
        )
    }) {
        return Some(format!(
            "il testo parlato contiene il simbolo «{c}», che la sintesi vocale leggerebbe o \
             scarterebbe: scriva il testo a parole (per il tasto # scriva «cancelletto»)"
        ));
    }
    None
}

/// Text as one spoken paragraph: lines joined with spaces.
fn spoken(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The name of the spoken template of a notice placed as a call: `avviso_<kind>`.
pub fn call_template(kind: Kind) -> String {
    format!("avviso_{}", kind.as_str())
}

/// `payload` with what a call speaks instead of reading: the ticket number and the URP's
/// number spelt digit by digit (`numero_parlato`, `urp_telefono_parlato`).
pub fn spoken_payload(payload: &Value, lang: Lang, urp_phone: &str) -> Value {
    let mut p = payload.clone();
    if let Value::Object(m) = &mut p {
        let number = m
            .get("number")
            .and_then(Value::as_str)
            .map(|n| crate::phone::speech::spell(lang, n));
        if let Some(n) = number {
            m.insert("numero_parlato".to_owned(), Value::String(n));
        }
        m.insert(
            "urp_telefono_parlato".to_owned(),
            Value::String(crate::phone::speech::spell(lang, urp_phone)),
        );
        m.remove(STATUS_URL);
    }
    p
}

impl Templates {
    /// The words of a notice spoken on an automated call (`telefono/<lang>/avviso_<kind>`):
    /// plain text that passes [`unspeakable`], in the result's `text`; no subject, no HTML. A
    /// notice without such a template, or whose words cannot be spoken, is a failure (the
    /// call is not placed and the fallback chain goes on to the office).
    fn render_call(
        &self,
        kind: Kind,
        lang: Lang,
        payload: &Value,
    ) -> Result<RenderedMessage, RenderFailure> {
        let name = call_template(kind);
        let key = self
            .key_for(Audience::Telefono, &name, lang)
            .ok_or_else(|| RenderFailure {
                key: format!("telefono/{name}/{}", lang_str(lang)),
                message: "no spoken template for this notice".to_owned(),
            })?;
        let payload = spoken_payload(payload, key.lang, &self.settings.urp_phone);
        let text = self
            .render_spoken(&name, key.lang, &payload)
            .ok_or_else(|| RenderFailure {
                key: key.to_string(),
                message: "the spoken notice cannot be rendered or spoken".to_owned(),
            })?;
        let version = self.current().versions.get(&key).map_or(0, |(v, _)| *v);
        Ok(RenderedMessage {
            subject: String::new(),
            text,
            html: None,
            template: key.to_string(),
            version,
            attachments: Vec::new(),
        })
    }

    /// The words of the telephone prompt `name` in `lang`, with `payload`: the live version,
    /// or the bundled default when the live one fails on this payload (logged). `None` when
    /// there is no such prompt or both fail: the caller hears the rest of the script.
    pub fn render_spoken(&self, name: &str, lang: Lang, payload: &Value) -> Option<String> {
        let key = self.key_for(Audience::Telefono, name, lang)?;
        let ctx = self.settings.context(payload, key.lang, Channel::Email);
        let set = self.current();
        let text = |regs: &Registries| {
            regs.render(&key, Part::Text, &ctx)
                .ok()
                .map(|t| spoken(&t))
                .filter(|t| !t.is_empty() && unspeakable(t).is_none())
        };
        if let Some(t) = text(&set.live) {
            return Some(t);
        }
        tracing::error!(template = %key, "a telephone prompt failed on a real call; the default is used");
        let t = text(&self.defaults);
        if t.is_none() {
            tracing::error!(template = %key, "the default telephone prompt failed too");
        }
        t
    }
}

/// Trims trailing spaces and collapses runs of blank lines left by optional sections.
pub fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.trim().lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_hardening;
#[cfg(test)]
mod tests_io;
