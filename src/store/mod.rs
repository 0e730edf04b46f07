//! The ticket store: tickets and their append-only event history on SQLite (embedded default)
//! or PostgreSQL (production). The only module that speaks SQL.
//!
//! Both back ends share every query: instants are Unix seconds in 64-bit integer columns, text
//! is text, and statements use `$n` placeholders, which SQLite accepts too. Only the schema
//! (one migrations folder per back end) and row locking differ.
//!
//! SLA fields in `tickets` are a cache: every write replays the ticket's events through the
//! pure rules of [`crate::ticket`] and the clock of [`crate::sla`], under the calendar and policy
//! versions the ticket was opened with, in the same transaction as the event.

mod admin;
pub mod backup;
mod desk;
mod domicile;
mod inbound;
mod monitor;
mod outbox;
mod portal;
mod privacy;
mod queues;
mod reports;
mod satisfaction;
mod schedule;
mod templates;
mod tickets;
mod versions;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};

pub use admin::{AdminError, AdminUser, AuditRecord, Role, UserChange, UserChanged};
pub use desk::{
    AttemptRow, Cursor, InboundAttachments, MessageRecord, PAGE_LIST_CAP, PartRow, ReceiptRow,
    ReplyRow, SearchPage, SearchQuery, SearchRow, SearchState, TicketPage,
};
pub use domicile::{CachedDomicile, DomicileError};
pub use inbound::{
    Accepted, InboundError, InboundPolicy, InboundReport, InboundRow, InboundWriter, NewInbound,
    SmsAnswering, WriteError, inbound_policy,
};
pub use monitor::{AtRisk, MonitorError};
pub use outbox::{
    AttemptRecord, AttemptView, CycleReport, DeliveryState, EngineInput, Finished, IoCheckRow,
    Lease, Leased, NewOutbox, OutboxError, OutboxRow, Receipt, UnreadableRow,
};
pub use portal::{PortalError, PortalTicket};
pub use privacy::{
    Erasure, KEPT, MAX_BATCHES_PER_PASS, PrivacyError, RetentionCounts, RetentionReport,
};
pub use queues::{
    Acted, Chain, OptOut, QueueCounts, QueueError, QueuedMessage, StaffEvent, UnmatchedReply,
};
pub use reports::{ReportStoreError, ReportTicket, StoredCriticality};
pub use satisfaction::{
    Answer, AnswerChannel, MAX_COMMENT_CHARS, NewAnswer, Recorded, SatisfactionComment,
    SatisfactionError, SatisfactionRow, SatisfactionSummary,
};
pub use schedule::{Claim, NewRun, ReportMail, RunRecord, ScheduleError};
pub use templates::{TemplateStoreError, TemplateVersion};
pub use tickets::{BulkEvent, BulkTicket, TicketError};
pub use versions::{RegistryError, VersionRegistry};

use crate::config::Config;
use crate::sla::OutOfRange;
pub use crate::ticket::record::{
    EventRecord, HistoryError, LIST_STATES, SlaView, TicketRecord, derive, evaluate, state_name,
    ticket_json,
};
use crate::time::Timestamp;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The migrations this binary applies on `backend` (also read by `messo doctor` and the
/// backup's checks, which compare a store with them).
pub fn migrator(backend: Backend) -> &'static sqlx::migrate::Migrator {
    match backend {
        Backend::Sqlite => &SQLITE_MIGRATIONS,
        Backend::Postgres => &POSTGRES_MIGRATIONS,
    }
}

/// Which database the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Why opening the store failed: the URL, the SQLite file, the migrations, the configuration's
/// versions.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("unsupported database URL (expected sqlite: or postgres://)")]
    Url,
    #[error("cannot create the directory for the SQLite file: {0}")]
    Dir(std::io::Error),
    /// `database.url` names a file that SQLite cannot use: found at once, not after the pool's
    /// time-out.
    #[error("{path} cannot be used as the SQLite database: {reason} (check database.url)")]
    NotSqlite { path: String, reason: String },
    /// The store holds a migration this binary does not know: a newer Messo wrote it.
    /// Migrations only go forward, so this binary refuses to start rather than run on a schema
    /// it was not built for.
    #[error(
        "the store was upgraded by a newer Messo (it has migration {version}, which this \
         binary does not know): run that version, or restore a backup taken before the upgrade"
    )]
    NewerStore { version: i64 },
}

/// Any store error, for callers that use several repositories in one operation (the daemon's
/// pass, the HTTP layer). Each repository returns its own type; this only gathers them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Ticket(#[from] TicketError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Inbound(#[from] InboundError),
    #[error(transparent)]
    Template(#[from] TemplateStoreError),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Portal(#[from] PortalError),
    #[error(transparent)]
    Monitor(#[from] MonitorError),
    #[error(transparent)]
    Satisfaction(#[from] SatisfactionError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Report(#[from] ReportStoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Domicile(#[from] DomicileError),
    #[error(transparent)]
    Privacy(#[from] PrivacyError),
}

impl StoreError {
    /// Whether the error is about the request (and would be the same on retry), not about us.
    pub fn is_client_error(&self) -> bool {
        matches!(self, StoreError::Ticket(e) if e.is_client_error())
            || matches!(self, StoreError::Satisfaction(e) if e.is_client_error())
    }
}

impl From<HistoryError> for StoreError {
    fn from(e: HistoryError) -> Self {
        StoreError::Ticket(e.into())
    }
}

impl From<OutOfRange> for StoreError {
    fn from(e: OutOfRange) -> Self {
        StoreError::Ticket(e.into())
    }
}

/// `From` each repository's error for a type that is `From<StoreError>` (an HTTP problem, the
/// daemon's error), so `?` works on any repository's result.
macro_rules! from_store_errors {
    ($t:ty) => {
        $crate::store::from_store_errors!(
            @each $t; OpenError, TicketError, OutboxError, InboundError, TemplateStoreError,
            AdminError, PortalError, MonitorError, ScheduleError, SatisfactionError,
            RegistryError, ReportStoreError, DomicileError, PrivacyError
        );
    };
    (@each $t:ty; $($e:ident),*) => {$(
        impl From<$crate::store::$e> for $t {
            fn from(e: $crate::store::$e) -> Self {
                $crate::store::StoreError::from(e).into()
            }
        }
    )*};
}
pub(crate) use from_store_errors;

/// Whether a write did something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created(TicketRecord),
    /// The same ticket or event was already there: nothing changed.
    Unchanged(TicketRecord),
}

impl Outcome {
    /// The ticket after the write.
    pub fn ticket(&self) -> &TicketRecord {
        match self {
            Outcome::Created(t) | Outcome::Unchanged(t) => t,
        }
    }
}

/// Filter and page of `list_tickets`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// `running`, `warning`, `paused` or `breached`; open tickets only.
    pub state: Option<String>,
    /// Closed tickets instead of open ones.
    pub closed: bool,
    pub office: Option<String>,
    pub priority: Option<String>,
    /// Instants `[from, to)` of the closure (closed tickets) or of the receipt (open ones).
    pub period: Option<(Timestamp, Timestamp)>,
    /// Return tickets with an internal id greater than this (the previous page's `next`).
    pub after: Option<i64>,
    pub limit: i64,
}

/// What one pass over `crm_inbox` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboxReport {
    pub accepted: u64,
    pub unchanged: u64,
    pub rejected: u64,
}

/// An answer stored under an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub request_hash: String,
    pub status: u16,
    pub body: String,
}

/// The store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    /// SQLite files only: connections that only read (the portal's), beside the one that
    /// writes. In WAL mode readers and the writer do not wait for each other.
    reads: Option<AnyPool>,
    backend: Backend,
    versions: Arc<VersionRegistry>,
}

/// A repository: one part of the schema, its SQL and row mapping, and its own error type.
/// Borrowed from the [`Store`] (`store.tickets()`), cheap to make.
macro_rules! repository {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name<'s> {
            store: &'s Store,
        }
    )*};
}

repository!(
    /// Tickets, their events, the CRM inbox and idempotent answers (`tickets.rs`).
    Tickets,
    /// The engine's transaction and the outbox (`outbox.rs`).
    Outbox,
    /// Inbound records (`inbound.rs`).
    Inbound,
    /// Template versions (`templates.rs`).
    Templates,
    /// Admin users, tokens, sessions and the audit log (`admin.rs`).
    Admin,
    /// The portal's reads, revocation and link key (`portal.rs`).
    Portal,
    /// Monitoring counts and lists (`monitor.rs`).
    Monitor,
    /// What compliance reports and criticalities read (`reports.rs`).
    Reports,
    /// Citizens' satisfaction answers and their summary (`satisfaction.rs`).
    Satisfaction,
    /// Runs of scheduled reports, claimed once with the messages they queue (`schedule.rs`).
    Schedule,
    /// The console's search and ticket page reads (`desk.rs`).
    Desk,
    /// The work queues and the office's actions on them (`queues.rs`).
    Queues,
    /// The digital domicile cache (`domicile.rs`).
    Domiciles,
    /// The personal-data lifecycle: retention, export, erasure (`privacy.rs`).
    Privacy,
);

/// SQLite connections that only read, for the portal (each is a thread of its own in sqlx).
const SQLITE_READERS: u32 = 4;

/// Every table of the schema, as `/readyz` checks them (`Store::check_tables`).
pub const STORE_TABLES: &[&str] = &[
    "tickets",
    "ticket_events",
    "crm_inbox",
    "idempotency_keys",
    "calendar_versions",
    "policy_versions",
    "outbox",
    "delivery_attempts",
    "delivery_receipts",
    "inbound_messages",
    "sms_opt_out",
    "sms_opt_out_lifts",
    "dlr_parts",
    "template_versions",
    "admin_users",
    "admin_tokens",
    "admin_sessions",
    "audit_log",
    "portal_keys",
    "satisfaction",
    "report_schedule",
    "report_cache",
    "access_code_failures",
    "sms_answers",
    "digital_domiciles",
    "privacy_erasures",
    "privacy_keys",
];

pub(crate) const TICKET_COLUMNS: &str = "id, number, office, category, priority, subject, step, step_text, \
     citizen, received_at, closed_at, waiting_since, policy_version, calendar_version, \
     sla_due_at, sla_state, sla_elapsed_s, sla_computed_at, next_check_at";

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp)
}

/// The first bytes of every SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Before SQLite opens `path`: its folder made (0700 when we make it), the file made empty and
/// 0600 when missing (SQLite gives its `-wal` and `-shm` files the database's mode), a file of
/// ours that others can read narrowed, and a file that is not a database refused at once by
/// its header, naming it.
fn prepare_sqlite_file(path: &Path) -> Result<(), OpenError> {
    use std::io::Read;
    if let Some(dir) = path.parent() {
        crate::private_files::create_dir_all(dir).map_err(OpenError::Dir)?;
    }
    let not_sqlite = |reason: String| OpenError::NotSqlite {
        path: path.display().to_string(),
        reason,
    };
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => return Err(not_sqlite("it is a directory".to_owned())),
        Ok(m) if m.len() > 0 => {
            let mut head = [0u8; 16];
            let mut f = std::fs::File::open(path).map_err(|e| not_sqlite(e.to_string()))?;
            let n = f.read(&mut head).map_err(|e| not_sqlite(e.to_string()))?;
            if n < head.len() || &head != SQLITE_HEADER {
                return Err(not_sqlite(
                    "it is not a SQLite database (its first bytes are not the SQLite header)"
                        .to_owned(),
                ));
            }
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::private_files::create_empty_if_missing(path)
                .map_err(|e| not_sqlite(format!("cannot create it: {e}")))?;
        }
        Err(e) => return Err(not_sqlite(e.to_string())),
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        crate::private_files::narrow_file(Path::new(&p))
            .map_err(|e| not_sqlite(format!("cannot narrow its mode: {e}")))?;
    }
    Ok(())
}

/// Opens one connection and reads the schema's version, so a file SQLite refuses (damaged,
/// encrypted, unreadable, locked) fails now with SQLite's own words, not after the pool has
/// retried for its whole time-out.
async fn probe_sqlite(path: &str, opts: &AnyConnectOptions) -> Result<(), OpenError> {
    use sqlx::{ConnectOptions, Connection};
    let not_sqlite = |e: sqlx::Error| OpenError::NotSqlite {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let mut conn = opts.connect().await.map_err(not_sqlite)?;
    let read = sqlx::query("PRAGMA schema_version")
        .fetch_optional(&mut conn)
        .await
        .map(|_| ())
        .map_err(not_sqlite);
    let _ = conn.close().await;
    read
}

impl Store {
    /// Connects to `url` (`sqlite://path` or `postgres://…`). A SQLite file and its directory
    /// are created when missing; the file runs in WAL mode with foreign keys on, written through
    /// one connection and read by the portal through up to `SQLITE_READERS` more.
    pub async fn connect(url: &str) -> Result<Store, OpenError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(OpenError::Url);
        };
        let mut reads = None;
        let pool = match backend {
            Backend::Sqlite => {
                let path = url
                    .trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:");
                let path = path.split('?').next().unwrap_or(path);
                let sep = if url.contains('?') { '&' } else { '?' };
                let opts: AnyConnectOptions = format!("{url}{sep}mode=rwc").parse()?;
                if !path.is_empty() && path != ":memory:" {
                    prepare_sqlite_file(Path::new(path))?;
                    probe_sqlite(path, &opts).await?;
                }
                if !path.is_empty() && path != ":memory:" {
                    // Opened when first used, after the writer has made the file and its schema.
                    reads = Some(
                        AnyPoolOptions::new()
                            .max_connections(SQLITE_READERS)
                            .after_connect(|conn, _| {
                                Box::pin(async move {
                                    use sqlx::Executor;
                                    conn.execute(
                                        "PRAGMA query_only = ON; PRAGMA busy_timeout = 10000;",
                                    )
                                    .await?;
                                    Ok(())
                                })
                            })
                            .connect_lazy_with(opts.clone()),
                    );
                }
                // One connection: SQLite has one writer, and a single connection never meets
                // SQLITE_BUSY from its own pool.
                AnyPoolOptions::new()
                    .max_connections(1)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            use sqlx::Executor;
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect_with(opts)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await?
            }
        };
        Ok(Store {
            pool,
            reads,
            backend,
            versions: Arc::new(VersionRegistry::default()),
        })
    }

    /// The back end in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection pool, for tests and tools that write rows as a CRM would.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Where reads that need not see the caller's own uncommitted writes go: SQLite's reading
    /// connections, or PostgreSQL's pool.
    pub(crate) fn read_pool(&self) -> &AnyPool {
        self.reads.as_ref().unwrap_or(&self.pool)
    }

    /// Reads one row of every table the daemon works with, so a table that is missing, cannot
    /// be read or whose first pages are damaged is found (`/readyz`). Each query stops at the
    /// first row: cheap whatever the size. All its columns are asked for, so the table itself
    /// is read (SQLite answers `SELECT 1` from the smallest index). On SQLite it goes through a
    /// reading connection, beside the writer. Returns the first table that fails.
    pub async fn check_tables(&self) -> Result<(), (&'static str, OpenError)> {
        for table in STORE_TABLES {
            let sql = format!("SELECT * FROM {table} LIMIT 1");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_optional(self.read_pool())
                .await
                .map_err(|e| (*table, OpenError::Db(e)))?;
        }
        Ok(())
    }

    /// Applies pending migrations, forward only: a store that holds a migration this binary
    /// does not know (a newer Messo's) is refused with [`OpenError::NewerStore`].
    pub async fn migrate(&self) -> Result<(), OpenError> {
        let done = match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await,
        };
        match done {
            Err(sqlx::migrate::MigrateError::VersionMissing(version)) => {
                Err(OpenError::NewerStore { version })
            }
            other => Ok(other?),
        }
    }

    /// Records the configuration's calendar and policy as versions (once per distinct content)
    /// and makes them the ones new tickets open under. Returns (calendar, policy) version ids.
    pub async fn register_config(
        &self,
        config: &Config,
        now: Timestamp,
    ) -> Result<(i64, i64), OpenError> {
        let ids = versions::register(&self.pool, &config.calendar, &config.policy, now).await?;
        self.versions.load_all(&self.pool).await?;
        self.versions.set_current(ids);
        Ok(ids)
    }

    /// The version registry.
    pub fn versions(&self) -> &VersionRegistry {
        &self.versions
    }

    /// `count` bind placeholders from number `start`: `$n` on PostgreSQL, plain `?` on SQLite
    /// (whose lookup of `$n` names is linear per parameter, quadratic over a long list).
    pub(crate) fn placeholders(&self, start: usize, count: usize) -> Vec<String> {
        match self.backend {
            Backend::Sqlite => vec!["?".to_owned(); count],
            Backend::Postgres => (start..start + count).map(|i| format!("${i}")).collect(),
        }
    }

    fn lock_suffix(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }

    /// A table `alias` read from a JSON array of arrays bound as parameter number `param`:
    /// element `i` of each inner array is column `cols[i]`, typed as given (a `json` column is
    /// kept as JSON text). One text parameter carries any number of rows, so the statement's
    /// text is the same whatever their number and is prepared once per connection; sqlx's `Any`
    /// driver cannot bind arrays.
    pub(crate) fn json_rows(&self, param: usize, alias: &str, cols: &[(&str, &str)]) -> String {
        let fields = cols
            .iter()
            .enumerate()
            .map(|(i, (name, ty))| match (self.backend, *ty) {
                (Backend::Postgres, "json") => format!("(e -> {i})::text AS {name}"),
                (Backend::Postgres, _) => format!("(e ->> {i})::{ty} AS {name}"),
                (Backend::Sqlite, _) => format!("json_extract(value, '$[{i}]') AS {name}"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        match self.backend {
            Backend::Postgres => {
                format!(
                    "(SELECT {fields} FROM json_array_elements(${param}::json) AS e) AS {alias}"
                )
            }
            Backend::Sqlite => format!("(SELECT {fields} FROM json_each(?)) AS {alias}"),
        }
    }

    /// Tickets, their events, the CRM inbox and idempotent answers.
    pub fn tickets(&self) -> Tickets<'_> {
        Tickets { store: self }
    }

    /// The engine's transaction and the outbox: messages owed, leased, delivered.
    pub fn outbox(&self) -> Outbox<'_> {
        Outbox { store: self }
    }

    /// Inbound records: stored, then acted on.
    pub fn inbound(&self) -> Inbound<'_> {
        Inbound { store: self }
    }

    /// Template versions.
    pub fn templates(&self) -> Templates<'_> {
        Templates { store: self }
    }

    /// The admin console's users, tokens, sessions and audit log.
    pub fn admin(&self) -> Admin<'_> {
        Admin { store: self }
    }

    /// What the citizen's status page reads, link revocation and the link key.
    pub fn portal(&self) -> Portal<'_> {
        Portal { store: self }
    }

    /// Counts and lists for the dashboard, `/metrics` and reports.
    pub fn monitor(&self) -> Monitor<'_> {
        Monitor { store: self }
    }

    /// What compliance reports and the criticalities list read.
    pub fn reports(&self) -> Reports<'_> {
        Reports { store: self }
    }

    /// Citizens' satisfaction answers (one per ticket) and the reports' summary of them.
    pub fn satisfaction(&self) -> Satisfaction<'_> {
        Satisfaction { store: self }
    }

    /// Runs of scheduled reports (the monthly e-mail).
    pub fn schedule(&self) -> Schedule<'_> {
        Schedule { store: self }
    }

    /// The console's search and the ticket page's reads.
    pub fn desk(&self) -> Desk<'_> {
        Desk { store: self }
    }

    /// The work queues (held messages, unreachable citizens, unmatched replies, opt-outs) and
    /// the office's actions on them.
    pub fn queues(&self) -> Queues<'_> {
        Queues { store: self }
    }

    /// The digital domicile cache: INAD's answers by codice fiscale.
    pub fn domiciles(&self) -> Domiciles<'_> {
        Domiciles { store: self }
    }

    /// The personal-data lifecycle: retention by kind of data, a citizen's export and erasure.
    pub fn privacy(&self) -> Privacy<'_> {
        Privacy { store: self }
    }
}
