//! The OpenAPI schemas of the JSON that the HTTP edge reads and writes but whose Rust types live
//! in other layers (the ticket, the SLA explanation, the citizen's view, template previews): the
//! core keeps no OpenAPI dependency, so their wire shape is described here, once.
//!
//! These types are never built: they only describe. What keeps them honest is `tests/openapi.rs`,
//! which validates real answers of the running API against the served document.

#![allow(dead_code)] // described, never built

use serde_json::Value;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, AnyOfBuilder, ObjectBuilder, Schema, Type,
};
use utoipa::{PartialSchema, ToSchema};

/// A field of a request that is wrong.
#[derive(ToSchema)]
pub struct FieldError {
    /// The field at fault, named as the client wrote it (`citizen.mobile`, `Idempotency-Key`,
    /// `(body)`).
    field: String,
    message: String,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Urgente,
    Alta,
    Normale,
    Bassa,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Generale,
    AlboPretorio,
    InLoco,
}

/// How the request reached the office (desk, phone, e-mail, PEC, web form, SMS, paper mail).
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReceivedVia {
    Desk,
    Phone,
    Email,
    Pec,
    Web,
    Sms,
    Post,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
    Pec,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LangName {
    It,
    En,
}

/// A processing step. Texts are trimmed; lengths count characters.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[schema(min_length = 1, max_length = 100)]
    code: String,
    /// What the citizen reads.
    #[schema(min_length = 1, max_length = 1000)]
    text: String,
}

// The fields of `NewCitizen`, without the rule that one address at least is given.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCitizenFields {
    email: Option<String>,
    /// A phone number; Italian national forms are accepted and it is stored in E.164.
    #[schema(examples("+39 347 123 4567"))]
    mobile: Option<String>,
    pec: Option<String>,
    /// Codice fiscale, checked (pattern and check letter) and stored upper-case.
    fiscal_code: Option<String>,
    #[schema(inline, default = "it")]
    language: Option<LangName>,
    /// Defaults to the first address given among email, mobile, pec.
    preferred_channel: Option<Channel>,
    opt_out: Option<Vec<Channel>>,
}

/// How to reach the citizen. At least one of `email`, `mobile`, `pec`; the preferred channel
/// must have an address. Unknown fields are refused.
pub struct NewCitizen;

impl PartialSchema for NewCitizen {
    fn schema() -> RefOr<Schema> {
        let one_address =
            ["email", "mobile", "pec"]
                .into_iter()
                .fold(AnyOfBuilder::new(), |any, field| {
                    any.item(
                        ObjectBuilder::new()
                            .property(field, ObjectBuilder::new().schema_type(Type::String))
                            .required(field),
                    )
                });
        AllOfBuilder::new()
            .description(Some(
                "How to reach the citizen. At least one of `email`, `mobile`, `pec`; the \
                 preferred channel must have an address. Unknown fields are refused.",
            ))
            .item(NewCitizenFields::schema())
            .item(one_address)
            .into()
    }
}

impl ToSchema for NewCitizen {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Channel::name().into(), Channel::schema()));
        <Channel as ToSchema>::schemas(schemas);
    }
}

/// The citizen's contact as stored (normalized).
#[derive(ToSchema)]
pub struct Citizen {
    #[schema(required = true)]
    email: Option<String>,
    /// E.164.
    #[schema(required = true, examples("+393471234567"))]
    mobile: Option<String>,
    #[schema(required = true)]
    pec: Option<String>,
    #[schema(required = true)]
    fiscal_code: Option<String>,
    #[schema(inline)]
    language: LangName,
    preferred_channel: Channel,
    opt_out: Vec<Channel>,
}

/// A new ticket as the CRM sends it (the same payload as a `crm_inbox` row of kind `ticket`).
/// Every problem is reported in one 422, each with its field. Unknown fields are refused.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTicket {
    /// 1–64 letters, digits and `. _ / -`, starting with a letter or digit.
    #[schema(
        pattern = "^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$",
        examples("2026/000123")
    )]
    number: String,
    #[schema(min_length = 1, max_length = 100)]
    office: String,
    #[schema(default = "generale")]
    category: Option<Category>,
    priority: Priority,
    #[schema(min_length = 1, max_length = 500)]
    subject: String,
    /// RFC 3339 with a UTC offset (`Z` or `±HH:MM`).
    #[schema(format = DateTime)]
    received_at: String,
    citizen: NewCitizen,
    step: Option<Step>,
    /// Optional; the reports group tickets without it as `not_given`.
    received_via: Option<ReceivedVia>,
}

// The channels an integration can arrive by.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplyChannel {
    Email,
    Sms,
    Pec,
    Phone,
    Portal,
    Desk,
    Post,
}

/// An event on a ticket (the same payload as a `crm_inbox` row of kind `event`). `at` may not
/// be before the ticket's receipt or its last event, nor more than 5 minutes in the future
/// (422). Kinds Messo records itself (`received`, `rebaselined`) are refused.
pub struct NewEvent;

impl PartialSchema for NewEvent {
    fn schema() -> RefOr<Schema> {
        // Each kind refuses fields it does not know; serde says so only of structs, so the
        // derived variants are closed here.
        let mut schema = EventKinds::schema();
        if let RefOr::T(Schema::OneOf(kinds)) = &mut schema {
            for kind in &mut kinds.items {
                if let RefOr::T(Schema::Object(o)) = kind {
                    o.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
                }
            }
        }
        schema
    }
}

impl ToSchema for NewEvent {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        <EventKinds as ToSchema>::schemas(schemas);
    }
}

/// An event on a ticket (the same payload as a `crm_inbox` row of kind `event`). `at` may not
/// be before the ticket's receipt or its last event, nor more than 5 minutes in the future
/// (422). Kinds Messo records itself (`received`, `rebaselined`) are refused.
#[derive(ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKinds {
    /// A processing step, with the text the citizen reads.
    #[schema(title = "step_changed")]
    StepChanged {
        /// When it happened: RFC 3339 with a UTC offset.
        #[schema(format = DateTime)]
        at: String,
        /// The step's code.
        #[schema(min_length = 1, max_length = 100)]
        step: String,
        #[schema(min_length = 1, max_length = 1000)]
        text: String,
    },
    /// The office needs something from the citizen: the clock stops. 409 when already waiting.
    #[schema(title = "integration_requested")]
    IntegrationRequested {
        /// When it happened: RFC 3339 with a UTC offset.
        #[schema(format = DateTime)]
        at: String,
        #[schema(min_length = 1, max_length = 2000)]
        missing: String,
    },
    /// The citizen answered: the clock resumes. 409 when not waiting.
    #[schema(title = "integration_received")]
    IntegrationReceived {
        /// When it happened: RFC 3339 with a UTC offset.
        #[schema(format = DateTime)]
        at: String,
        #[schema(inline)]
        channel: ReplyChannel,
        text: Option<String>,
    },
    /// Re-targets the ticket from its receipt; must change the priority (422).
    #[schema(title = "priority_changed")]
    PriorityChanged {
        /// When it happened: RFC 3339 with a UTC offset.
        #[schema(format = DateTime)]
        at: String,
        priority: Priority,
    },
    /// Re-targets the ticket from its receipt (to `in_loco`: the on-site term from this
    /// instant); must change the category (422); 409 while an appointment is booked.
    #[schema(title = "category_changed")]
    CategoryChanged {
        /// When it happened: RFC 3339 with a UTC offset.
        #[schema(format = DateTime)]
        at: String,
        category: Category,
    },
    /// Closes the ticket.
    #[schema(title = "closed")]
    Closed {
        /// When it happened: RFC 3339 with a UTC offset.
        #[schema(format = DateTime)]
        at: String,
        text: Option<String>,
    },
    /// Only on a closed ticket (409).
    #[schema(title = "reopened")]
    Reopened {
        /// When it happened: RFC 3339 with a UTC offset.
        #[schema(format = DateTime)]
        at: String,
        #[schema(min_length = 1, max_length = 1000)]
        reason: String,
    },
    /// A note; allowed on a closed ticket.
    #[schema(title = "note")]
    Note {
        /// When it happened: RFC 3339 with a UTC offset.
        #[schema(format = DateTime)]
        at: String,
        #[schema(min_length = 1, max_length = 4000)]
        text: String,
    },
    /// The office's new expected date of closure (after a breach, or when the work takes
    /// longer): told to the citizen with the reason, and given in the breach notice. The SLA
    /// term does not move. After `at` and within a year of it (422); not on a closed ticket (409).
    #[schema(title = "expected_date_set")]
    ExpectedDateSet {
        /// When it happened: RFC 3339 with a UTC offset.
        #[schema(format = DateTime)]
        at: String,
        /// The new expected date: RFC 3339 with a UTC offset.
        #[schema(format = DateTime)]
        expected_at: String,
        /// Why, in words the citizen reads.
        #[schema(min_length = 1, max_length = 1000)]
        reason: String,
    },
    /// An on-site appointment offered to the citizen (the citizen is sent a confirmation, by
    /// e-mail with a calendar file, and a reminder the working day before). Only on an
    /// `in_loco` ticket with no appointment booked (409). `starts_at` must lie inside an
    /// office window and the visit end in the same window, not in the past, and end by the
    /// on-site term unless a `reason` is given (422, naming the field).
    #[schema(title = "appointment_proposed")]
    AppointmentProposed {
        /// When it happened: RFC 3339 with a UTC offset.
        #[schema(format = DateTime)]
        at: String,
        /// When the visit starts: RFC 3339 with a UTC offset.
        #[schema(format = DateTime)]
        starts_at: String,
        /// How long the visit lasts.
        #[schema(minimum = 5, maximum = 480)]
        minutes: u32,
        /// Where: the address or the desk.
        #[schema(min_length = 1, max_length = 300)]
        place: String,
        /// Who receives the citizen.
        #[schema(min_length = 1, max_length = 100)]
        officer: String,
        /// Why the visit is after the on-site term (required then).
        #[schema(max_length = 1000)]
        reason: Option<String>,
    },
    /// The booked appointment moves (the citizen is told, with the updated calendar file).
    /// The same rules as a proposal; 409 when none is booked.
    #[schema(title = "appointment_changed")]
    AppointmentChanged {
        /// When it happened: RFC 3339 with a UTC offset.
        #[schema(format = DateTime)]
        at: String,
        /// When the visit starts: RFC 3339 with a UTC offset.
        #[schema(format = DateTime)]
        starts_at: String,
        #[schema(minimum = 5, maximum = 480)]
        minutes: u32,
        #[schema(min_length = 1, max_length = 300)]
        place: String,
        #[schema(min_length = 1, max_length = 100)]
        officer: String,
        #[schema(min_length = 1, max_length = 1000)]
        reason: String,
    },
    /// The booked appointment will not take place (the citizen is told; the calendar file
    /// removes it). 409 when none is booked.
    #[schema(title = "appointment_cancelled")]
    AppointmentCancelled {
        /// When it happened: RFC 3339 with a UTC offset.
        #[schema(format = DateTime)]
        at: String,
        #[schema(min_length = 1, max_length = 1000)]
        reason: String,
    },
    /// The visit took place: the on-site term is met and the ticket is closed (reopen it if
    /// more is to be done). Not before the appointment's start (422); 409 when none is booked.
    #[schema(title = "appointment_held")]
    AppointmentHeld {
        /// When it happened: RFC 3339 with a UTC offset.
        #[schema(format = DateTime)]
        at: String,
        #[schema(max_length = 4000)]
        text: Option<String>,
    },
    /// The citizen did not come (they are told how to book again). Not before the
    /// appointment's start (422); 409 when none is booked.
    #[schema(title = "appointment_missed")]
    AppointmentMissed {
        /// When it happened: RFC 3339 with a UTC offset.
        #[schema(format = DateTime)]
        at: String,
        #[schema(max_length = 1000)]
        reason: Option<String>,
    },
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SlaState {
    Running,
    Warning,
    Paused,
    Breached,
    Closed,
}

/// Where the ticket stands against its target.
#[derive(ToSchema)]
pub struct SlaView {
    #[schema(inline)]
    state: SlaState,
    #[schema(format = DateTime, required = true)]
    due_at: Option<String>,
    /// Counted seconds, uncapped.
    elapsed_s: i64,
    target_s: i64,
    #[schema(minimum = 0)]
    remaining_s: i64,
    #[schema(format = DateTime, required = true)]
    next_check_at: Option<String>,
    /// For a closed ticket: whether it was closed at or after its due instant.
    #[schema(required = true)]
    closed_late: Option<bool>,
    #[schema(format = DateTime)]
    computed_at: String,
}

/// The policy and calendar versions the ticket runs under.
#[derive(ToSchema)]
pub struct Versions {
    policy: i64,
    calendar: i64,
}

/// A ticket with its SLA. Instants are RFC 3339 in the calendar's time zone. In lists and write
/// answers `sla` is the stored cache (as of the last refresh); in
/// `GET /api/v1/tickets/{number}` it is computed at the time of the request.
#[derive(ToSchema)]
pub struct Ticket {
    number: String,
    office: String,
    category: Category,
    priority: Priority,
    subject: String,
    #[schema(required = true)]
    step: Option<Step>,
    citizen: Citizen,
    #[schema(format = DateTime)]
    received_at: String,
    #[schema(format = DateTime, required = true)]
    closed_at: Option<String>,
    #[schema(format = DateTime, required = true)]
    waiting_since: Option<String>,
    #[schema(inline)]
    versions: Versions,
    sla: SlaView,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Received,
    StepChanged,
    IntegrationRequested,
    IntegrationReceived,
    PriorityChanged,
    CategoryChanged,
    Closed,
    Reopened,
    Note,
    Rebaselined,
    /// The office reached the citizen by phone or at the desk (recorded from the console).
    ContactMade,
    /// The office corrected the citizen's contacts (recorded from the console).
    ContactChanged,
    /// The office set a new expected date of closure.
    ExpectedDateSet,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    Api,
    Crm,
    Webhook,
    System,
    /// The URP's staff, from the console.
    Console,
}

/// One event of a ticket's timeline.
#[derive(ToSchema)]
pub struct TicketEvent {
    id: i64,
    #[schema(inline)]
    kind: EventKind,
    #[schema(format = DateTime)]
    at: String,
    #[schema(inline)]
    source: EventSource,
    /// The event's other fields (as in `NewEvent`, without `kind` and `at`); a `received` event
    /// keeps the ticket as it arrived under `ticket`.
    #[schema(value_type = Object)]
    data: Value,
    #[schema(format = DateTime)]
    recorded_at: String,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClockKind {
    Business,
    Calendar,
    OnSite,
}

#[derive(ToSchema)]
pub struct StartReason {
    /// `in_hours`, `before_opening`, `out_of_hours`, `non_working_day`, `calendar_clock`, or the
    /// kind of closed day (`national_holiday`, `patron_day`, `closure`).
    kind: String,
    /// The closed day's Italian name, for a closed day.
    name: Option<String>,
}

#[derive(ToSchema)]
pub struct ClockStart {
    #[schema(format = DateTime)]
    at: String,
    #[schema(inline)]
    reason: StartReason,
}

#[derive(ToSchema)]
pub struct ExplainedSuspension {
    #[schema(format = DateTime)]
    from: String,
    #[schema(format = DateTime, required = true)]
    to: Option<String>,
    /// Null while the suspension is open.
    #[schema(required = true)]
    not_counted_s: Option<i64>,
}

#[derive(ToSchema)]
pub struct Span {
    #[schema(format = DateTime)]
    from: String,
    #[schema(format = DateTime)]
    to: String,
}

#[derive(ToSchema)]
pub struct ExplainedDay {
    #[schema(format = Date)]
    date: String,
    /// `counted`, `non_working`, `suspended`, `not_counted`, or the kind of closed day
    /// (`national_holiday`, `patron_day`, `closure`).
    kind: String,
    #[schema(required = true)]
    name: Option<String>,
    #[schema(inline)]
    counted: Vec<Span>,
    counted_s: i64,
    total_s: i64,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OpenState {
    Running,
    Warning,
    Paused,
    Breached,
}

/// How the deadline was reached, day by day.
#[derive(ToSchema)]
pub struct Explanation {
    /// The ticket number.
    #[schema(required = true)]
    id: Option<String>,
    #[schema(format = DateTime)]
    received_at: String,
    category: Category,
    priority: Priority,
    #[schema(inline)]
    clock: ClockKind,
    target_s: i64,
    #[schema(inline)]
    clock_start: ClockStart,
    #[schema(inline)]
    suspensions: Vec<ExplainedSuspension>,
    #[schema(inline)]
    days: Vec<ExplainedDay>,
    truncated: bool,
    #[schema(format = DateTime, required = true)]
    due_at: Option<String>,
    #[schema(format = DateTime)]
    now: String,
    #[schema(inline)]
    state: OpenState,
    elapsed_s: i64,
    remaining_s: i64,
}

/// A ticket with its timeline, its SLA computed now and the explanation of its deadline.
#[derive(ToSchema)]
pub struct TicketDetail {
    #[serde(flatten)]
    ticket: Ticket,
    events: Vec<TicketEvent>,
    explanation: Explanation,
}

/// A page of tickets.
#[derive(ToSchema)]
pub struct TicketPage {
    items: Vec<Ticket>,
    /// The `after` of the next page; null when this page is shorter than `limit`.
    #[schema(required = true)]
    next: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// Templates.

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartName {
    Subject,
    Text,
    Html,
    Sms,
    IoSubject,
    IoMarkdown,
}

/// One reason a template edit cannot go live.
#[derive(ToSchema)]
pub struct TemplateError {
    #[schema(inline)]
    part: PartName,
    #[schema(required = true, minimum = 1)]
    line: Option<u32>,
    #[schema(required = true, minimum = 1)]
    column: Option<u32>,
    /// The index of the sample context that failed, when the problem appears only on rendering.
    #[schema(required = true, minimum = 0)]
    sample: Option<u32>,
    /// In Italian, for the URP's administrators.
    message: String,
}

/// A character that forces UCS-2.
#[derive(ToSchema)]
pub struct Costly {
    #[schema(min_length = 1, max_length = 1)]
    ch: String,
    count: u32,
    /// Index in characters of its first occurrence.
    first_at: u32,
    name: String,
    /// A GSM-7 replacement; empty when the character can be removed.
    #[schema(required = true)]
    suggestion: Option<String>,
}

#[derive(ToSchema)]
pub enum SmsEncoding {
    #[serde(rename = "gsm-7")]
    Gsm7,
    #[serde(rename = "ucs-2")]
    Ucs2,
}

/// What the SMS part costs.
#[derive(ToSchema)]
pub struct SmsPreview {
    text: String,
    #[schema(inline)]
    encoding: SmsEncoding,
    /// Septets (GSM-7) or UTF-16 units (UCS-2).
    units: u32,
    parts: u32,
    per_part: u32,
    left_in_part: u32,
    costly: Vec<Costly>,
    max_parts: u32,
}

/// The message in the app IO: its subject, its Markdown body, and that body as the app shows
/// it (HTML of the app's subset: paragraphs, line breaks, h1–h3, strong, em, lists, links).
#[derive(ToSchema)]
pub struct IoPreview {
    subject: String,
    markdown: String,
    html: String,
}

/// A template rendered with one context.
#[derive(ToSchema)]
pub struct Preview {
    subject: String,
    text: String,
    #[schema(required = true)]
    html: Option<String>,
    #[schema(required = true)]
    sms: Option<SmsPreview>,
    /// Only for a citizen notice sent in the app IO.
    io: Option<IoPreview>,
}

// ---------------------------------------------------------------------------------------------
// The citizen's view.

/// An instant, in figures and in words.
#[derive(ToSchema)]
pub struct When {
    /// RFC 3339 in the office's offset.
    #[schema(format = DateTime)]
    at: String,
    /// The instant in words, e.g. `lunedì 9 marzo 2026 alle 10:15`.
    text: String,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusCode {
    InLavorazione,
    Sospesa,
    InRitardo,
    Conclusa,
}

/// Where the request stands, in one word and one sentence.
#[derive(ToSchema)]
pub struct CitizenStatus {
    #[schema(inline)]
    code: StatusCode,
    label: String,
    /// One sentence: the expected closure, since when it waits for the citizen, the exceeded
    /// term, or the closure.
    detail: String,
}

/// The clock is stopped while the office waits for the citizen.
#[derive(ToSchema)]
pub struct CitizenSuspension {
    since: When,
    /// What the office asked for.
    missing: String,
    /// Working time left once the citizen answers (business-clock targets).
    #[schema(required = true)]
    remaining: Option<String>,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CitizenStepKind {
    Received,
    StepChanged,
    IntegrationRequested,
    IntegrationReceived,
    Closed,
    Reopened,
    ExpectedDateSet,
}

/// One step of the request the citizen was told of.
#[derive(ToSchema)]
pub struct CitizenStep {
    #[schema(inline)]
    kind: CitizenStepKind,
    #[schema(required = true)]
    code: Option<String>,
    at: When,
    title: String,
    #[schema(required = true)]
    detail: Option<String>,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageChannel {
    Email,
    Pec,
    Sms,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    InInvio,
    Inviato,
    Consegnato,
    NonRecapitato,
    InVerifica,
}

/// One message sent to the citizen.
#[derive(ToSchema)]
pub struct CitizenMessage {
    kind: String,
    title: String,
    #[schema(inline)]
    channel: MessageChannel,
    channel_label: String,
    at: When,
    #[schema(inline)]
    state: MessageState,
    state_label: String,
}

/// What the citizen may see of a request; nothing internal (office notes, priority or category
/// changes, addresses, the citizen's reply texts).
#[derive(ToSchema)]
pub struct CitizenView {
    number: String,
    subject: String,
    /// Null when `portal.show_office` is off.
    #[schema(required = true)]
    office: Option<String>,
    #[schema(inline)]
    lang: LangName,
    received_at: When,
    #[schema(required = true)]
    counting_from: Option<When>,
    status: CitizenStatus,
    #[schema(required = true)]
    expected_closure: Option<When>,
    #[schema(required = true)]
    due_at: Option<When>,
    term_exceeded: bool,
    #[schema(required = true)]
    suspension: Option<CitizenSuspension>,
    #[schema(required = true)]
    closed_at: Option<When>,
    #[schema(required = true)]
    current_step: Option<CitizenStep>,
    steps: Vec<CitizenStep>,
    messages: Vec<CitizenMessage>,
    can_reply_email: bool,
    can_reply_sms: bool,
    #[schema(format = DateTime)]
    as_of: String,
}

// ---------------------------------------------------------------------------------------------
// Reports (`monitoring`); every measure is defined in `docs/reports.md`.

/// One row of a compliance report: a time bucket, the grouped dimensions (absent when not
/// grouped by them) and the measures. Durations are counted seconds (working time, or every
/// second for on-site assistance), suspensions excluded.
#[derive(ToSchema)]
pub struct ReportRow {
    /// `2026-11`, `2026-W47` or `2026-11-01..2026-11-30`.
    bucket: String,
    #[schema(format = Date)]
    bucket_from: String,
    #[schema(format = Date)]
    bucket_to: String,
    #[schema(required = true)]
    priority: Option<Priority>,
    #[schema(required = true)]
    category: Option<Category>,
    #[schema(required = true)]
    office: Option<String>,
    /// `desk`, `phone`, `email`, `pec`, `web`, `sms`, `post` or `not_given`.
    #[schema(required = true)]
    channel: Option<String>,
    received: u64,
    closed: u64,
    closed_on_time: u64,
    closed_late: u64,
    /// Closed on time over closed, in percent to one decimal; null when nothing was closed.
    #[schema(required = true)]
    on_time_pct: Option<f64>,
    open_breached: u64,
    #[schema(required = true)]
    close_median_s: Option<i64>,
    #[schema(required = true)]
    close_p90_s: Option<i64>,
    first_responses: u64,
    #[schema(required = true)]
    first_response_median_s: Option<i64>,
    #[schema(required = true)]
    first_response_p90_s: Option<i64>,
    suspended_s: i64,
    integration_requests: u64,
    auto_closed: u64,
    reopenings: u64,
    /// With `tickets=…`: per measure, the ticket numbers counted in this row.
    tickets: Option<std::collections::BTreeMap<String, Vec<String>>>,
}

/// Citizen notices made in a time bucket on one channel, of one kind, and what became of them.
#[derive(ToSchema)]
pub struct NoticeRow {
    bucket: String,
    channel: Channel,
    kind: String,
    owed: u64,
    delivered: u64,
    dead: u64,
    held: u64,
    in_flight: u64,
    fallbacks: u64,
}

/// Failed contacts in a time bucket.
#[derive(ToSchema)]
pub struct ContactRow {
    bucket: String,
    unreachable: u64,
    unmatched_replies: u64,
    opt_outs: u64,
}

/// A compliance report.
#[derive(ToSchema)]
pub struct Compliance {
    comune: String,
    #[schema(format = Date)]
    period_from: String,
    #[schema(format = Date)]
    period_to: String,
    group_by: String,
    #[schema(required = true)]
    office: Option<String>,
    #[schema(format = DateTime)]
    generated_at: String,
    rows: Vec<ReportRow>,
    /// The whole period, ungrouped; null when it counts nothing.
    #[schema(required = true)]
    total: Option<ReportRow>,
    notices: Vec<NoticeRow>,
    contacts: Vec<ContactRow>,
    satisfaction: Vec<SatisfactionRow>,
    /// Citizens' comments: only for console users, only in JSON; absent otherwise.
    comments: Option<Vec<SatisfactionComment>>,
    /// The targets of the policy in force when the report was made, one per category and
    /// priority.
    targets: Vec<ReportTarget>,
    /// Where the measures are defined.
    definitions: String,
}

/// The target of one category and priority: the counted seconds to close.
#[derive(ToSchema)]
pub struct ReportTarget {
    category: Category,
    priority: Priority,
    /// Working seconds on the `business` clock, every second on the `calendar` clock.
    seconds: i64,
    #[schema(inline)]
    clock: TargetClock,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetClock {
    Business,
    Calendar,
    OnSite,
}

/// A criticality ("criticità rilevata").
#[derive(ToSchema)]
pub struct Criticality {
    #[schema(inline)]
    kind: CriticalityKind,
    /// Why, in Italian, for the office.
    reason: String,
    #[schema(required = true)]
    ticket: Option<String>,
    #[schema(required = true)]
    office: Option<String>,
    #[schema(required = true)]
    priority: Option<Priority>,
    #[schema(format = DateTime, required = true)]
    since: Option<String>,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CriticalityKind {
    Breached,
    Warning,
    SuspensionPastCap,
    MessageHeld,
    CitizenUnreachable,
    UnmatchedReply,
    OfficeBelowThreshold,
}

/// The satisfaction answers of one office in one local month (of the answer).
#[derive(ToSchema)]
pub struct SatisfactionRow {
    office: String,
    /// `2026-11`.
    month: String,
    answers: u64,
    /// 1.0 to 5.0, to one decimal.
    mean: f64,
    /// Answers per score, 1 to 5.
    scores: [u64; 5],
}

/// A citizen's comment with their answer (for the office's staff only).
#[derive(ToSchema)]
pub struct SatisfactionComment {
    office: String,
    month: String,
    ticket: String,
    score: u8,
    comment: String,
    #[schema(format = DateTime)]
    answered_at: String,
}
