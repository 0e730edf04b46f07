//! The `messo` command line: the edge where configuration is read, the clock is consulted and
//! errors become exit codes.

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use messo::config::{Config, ConfigError};
use messo::domain::{Category, Lang, Priority};
use messo::sla::explain::{self, TicketTimes};
use messo::sla::{Sla, Suspension};
use messo::store::Store;
use messo::time::Timestamp;
use messo::{batch, locale};

/// Writes a line of command output to standard output; a closed pipe is an error, not a panic.
macro_rules! out {
    () => {
        writeln!(std::io::stdout().lock())?
    };
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*)?
    };
}

/// Messo keeps the URP's citizen help desk to its service agreement.
#[derive(Debug, Parser)]
#[command(name = "messo", version, about)]
struct Cli {
    /// Configuration file. Without it, config/messo.toml if present, else the built-in
    /// Roma Capitale defaults. MESSO_<SECTION>__<KEY> variables override any key.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: migrations, the HTTP API, polling of the ticket store.
    Run,
    /// Apply the database migrations and exit.
    Migrate,
    /// Validate the configuration and report every problem with its key path.
    CheckConfig,
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Admin console users and their bearer tokens.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Message templates: check the bundled and live ones, render one with a sample.
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Send one real message through the configured channel and print what happened.
    SendTest {
        /// email, pec, sms, io (the app IO, `[io]`; --to is a codice fiscale) or voice (an
        /// automated call, `[voice.outbound]`).
        #[arg(long)]
        channel: String,
        /// The address or mobile number to send to.
        #[arg(long)]
        to: String,
        /// The text (a short default says it is a test).
        #[arg(long)]
        text: Option<String>,
    },
    /// Record one PEC receipt read from standard input (run by the PEC mailbox's delivery agent).
    /// Exits 0 when recorded or not ours, 75 (try again later) when the store is unreachable.
    PecReceipt,
    /// The citizen's status links: print one, or turn off those already sent.
    #[command(subcommand)]
    Portal(PortalCommand),
    /// Tools for development and load tests.
    #[command(subcommand)]
    Dev(DevCommand),
    /// The SLA clock: batch answers, explanations, quotes for the front desk.
    #[command(subcommand)]
    Sla(SlaCommand),
    /// Monitoring reports (definitions in docs/reports.md).
    #[command(subcommand)]
    Report(ReportCommand),
    /// Check the configuration against the world before go-live: database, SMTP, SMS
    /// providers, the public URL, the sender domain's SPF/DKIM/DMARC, the clock, file
    /// permissions. Prints what to fix; exit status 0 when nothing failed (docs/operations.md).
    Doctor(DoctorArgs),
    /// Copy the store into FILE, consistently while the daemon runs (docs/operations.md).
    Backup(BackupArgs),
    /// Replace the store with a backup taken by `messo backup` (docs/operations.md).
    Restore(RestoreArgs),
    /// Ask a running daemon whether it is ready (`/readyz`): the container's health check.
    /// Exit status 0 when ready.
    Health(HealthArgs),
    /// A citizen's personal data (GDPR art. 15 and 17): everything held about them as JSON,
    /// or its erasure within the retention the law requires (docs/security.md).
    #[command(subcommand)]
    Privacy(PrivacyCommand),
}

#[derive(Debug, Subcommand)]
enum PrivacyCommand {
    /// Print as JSON everything the store holds about the citizen with this codice fiscale:
    /// tickets with their events, messages with their words, replies, the cached digital
    /// domicile, SMS opt-outs, erasures recorded.
    Export {
        /// The citizen's codice fiscale.
        #[arg(long, value_name = "CODICEFISCALE")]
        cf: String,
    },
    /// Remove or pseudonymise what the law lets go of the citizen with this codice fiscale:
    /// closed tickets' contacts and code, the words of messages sent, their replies and
    /// attachments, the cached domicile. Refused (exit status 3, nothing changed) while one of
    /// their tickets is open. Recorded with who, when and why.
    Erase {
        /// The citizen's codice fiscale.
        #[arg(long, value_name = "CODICEFISCALE")]
        cf: String,
        /// Why (e.g. the request's protocol number); kept with the erasure's record.
        #[arg(long)]
        reason: String,
        /// Who asked for it (default: the user running the command).
        #[arg(long)]
        operator: Option<String>,
    },
}

#[derive(Debug, Args)]
struct HealthArgs {
    /// The URL to ask (default: http.listen's /readyz on loopback).
    #[arg(long)]
    url: Option<String>,
}

#[derive(Debug, Args)]
struct DoctorArgs {
    /// Also send one test e-mail to this address through [smtp] (without it, no mail is sent).
    #[arg(long, value_name = "ADDRESS")]
    send_test_to: Option<String>,
    /// Warnings fail too (exit status 1).
    #[arg(long)]
    strict: bool,
    /// text or json.
    #[arg(long, default_value = "text")]
    format: String,
    /// Ask this DNS server (IP:PORT) instead of the system's resolvers (for tests).
    #[arg(long, value_name = "IP:PORT", hide = true)]
    nameserver: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
struct BackupArgs {
    /// The file to write (refused when it exists).
    #[arg(long, value_name = "FILE")]
    to: PathBuf,
}

#[derive(Debug, Args)]
struct RestoreArgs {
    /// The backup file to restore from.
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
}

#[derive(Debug, Subcommand)]
enum ReportCommand {
    /// The compliance report of a month or period, on standard output or into a file.
    Compliance(ComplianceArgs),
    /// What needs a person now, with the reason for each.
    Criticalities,
}

#[derive(Debug, Args)]
struct ComplianceArgs {
    /// A calendar month, e.g. 2026-11 (or give --from and --to).
    #[arg(long, conflicts_with_all = ["from", "to"])]
    month: Option<String>,
    /// First local day, e.g. 2026-11-01.
    #[arg(long, requires = "to")]
    from: Option<String>,
    /// Last local day, included.
    #[arg(long, requires = "from")]
    to: Option<String>,
    /// Any of month|week, priority, category, office, channel, comma-separated.
    #[arg(long, default_value = "office")]
    group_by: String,
    /// One office only.
    #[arg(long)]
    office: Option<String>,
    /// table, csv, excel (for Italian Excel), open-data, json or html.
    #[arg(long, default_value = "table")]
    format: String,
    /// Write here instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum SlaCommand {
    /// Read JSON Lines on standard input, write one JSON answer per line (see docs/sla.md).
    Batch,
    /// Explain, day by day, how one ticket's deadline was reached.
    Explain(ExplainArgs),
    /// When would a request received now (or at --at) be due?
    Due(DueArgs),
    /// Move a ticket (or every open ticket) to the current calendar and policy on purpose.
    Rebaseline(RebaselineArgs),
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create a user, or set an existing one's password (and role, if given): her sessions end
    /// and her tokens are revoked; a disabled user stays disabled (see `enable`). The password
    /// is read from MESSO_ADMIN_PASSWORD, else from the first line of standard input (at least
    /// 12 characters).
    User {
        /// The user name (a-z, 0-9, . _ -).
        name: String,
        /// admin, editor or viewer (a new user without it is an editor; an existing one keeps
        /// hers).
        #[arg(long)]
        role: Option<String>,
    },
    /// Disable a user: her sessions end and her tokens are revoked. The last enabled admin
    /// cannot be disabled.
    Disable { name: String },
    /// Enable a disabled user again; she signs in with her password and makes new tokens.
    Enable { name: String },
    /// Make a bearer token for a user; prints it once (only its argon2 hash is stored).
    Token {
        name: String,
        /// What the token is for, e.g. "deploy script".
        #[arg(long, default_value = "cli")]
        label: String,
    },
}

#[derive(Debug, Subcommand)]
enum PortalCommand {
    /// Print a fresh status link to a ticket (for the front desk to hand to the citizen).
    Link {
        /// The ticket number, e.g. 2026/000123.
        number: String,
    },
    /// Turn off every status link of a ticket sent so far; the next message carries a new one.
    Revoke {
        number: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
enum TemplateCommand {
    /// Check every template (bundled defaults and live versions) against its sample contexts.
    Check,
    /// Print one template rendered with one of its samples.
    Render {
        /// cittadino or ufficio.
        #[arg(long, default_value = "cittadino")]
        audience: String,
        /// The notice kind, e.g. violazione.
        kind: String,
        #[arg(long, default_value = "it")]
        lang: String,
        /// email, pec, sms, voice (an automated call, `[voice.outbound]`) or io (the app IO).
        #[arg(long, default_value = "email")]
        channel: String,
        /// Which sample context (0 is the first).
        #[arg(long, default_value_t = 0)]
        sample: usize,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a new random token; prints it once with the config entry holding its hash.
    New {
        /// A name for the client, e.g. crm.
        #[arg(long)]
        name: String,
        /// read, write, read,write, or portal (the citizen feed for the administration's portal).
        #[arg(long, default_value = "read,write")]
        scopes: String,
    },
}

#[derive(Debug, Subcommand)]
enum DevCommand {
    /// Fill the configured store with generated tickets and report the rates.
    Seed(SeedArgs),
    /// Run the engine over the configured store: catch up on everything due, then time passes
    /// that find and decide CHANGED tickets among all the others.
    BenchEngine {
        #[arg(long, default_value_t = 1000)]
        changed: i64,
        #[arg(long, default_value_t = 10)]
        rounds: u32,
    },
    /// Fill the configured store with tickets and their whole histories (steps, integration
    /// requests, closures, reopenings) received over MONTHS months up to UNTIL, for the
    /// reports' load test.
    SeedHistory {
        #[arg(long, default_value_t = 100_000)]
        tickets: i64,
        #[arg(long, default_value_t = 24)]
        months: i64,
        /// The generation's "now" (RFC 3339); events after it have not happened.
        #[arg(long, default_value = "2026-12-01T00:00:00+01:00")]
        until: String,
        /// Tickets per transaction.
        #[arg(long, default_value_t = 2_000)]
        batch: usize,
    },
    /// Print fresh status links to COUNT tickets spread evenly over the store, one line each:
    /// number, link token and codice fiscale (empty if none), separated by tabs.
    PortalLinks {
        #[arg(long, default_value_t = 10_000)]
        count: i64,
        /// Write the lines to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
struct SeedArgs {
    /// How many tickets.
    #[arg(long, default_value_t = 10_000)]
    tickets: u64,
    /// store: through the store API in batches; inbox: as a CRM's direct SQL writes, then
    /// picked up by the poller.
    #[arg(long, default_value = "store")]
    via: String,
    /// Ticket numbers start with this.
    #[arg(long, default_value = "SEED")]
    prefix: String,
    /// Tickets per transaction.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
}

#[derive(Debug, Args)]
struct RebaselineArgs {
    /// The ticket number.
    #[arg(long, conflicts_with = "open", required_unless_present = "open")]
    ticket: Option<String>,
    /// Every open ticket still on an older version.
    #[arg(long)]
    open: bool,
    /// Why (kept in the ticket's history).
    #[arg(long)]
    reason: String,
}

#[derive(Debug, Args)]
struct ExplainArgs {
    /// The ticket as one `sla batch` input line; without it and without --received-at, one line
    /// is read from standard input.
    #[arg(long, value_name = "JSON", conflicts_with_all = ["received_at", "priority", "category", "suspension", "id"])]
    line: Option<String>,
    /// Ticket number to show.
    #[arg(long)]
    id: Option<String>,
    /// Receipt instant, RFC 3339 with offset.
    #[arg(long, value_name = "TIME")]
    received_at: Option<String>,
    /// urgente | alta | normale | bassa.
    #[arg(long)]
    priority: Option<String>,
    /// generale | albo_pretorio | in_loco.
    #[arg(long)]
    category: Option<String>,
    /// A suspension FROM/TO (RFC 3339 each); FROM/ for one still open. Repeatable.
    #[arg(long, value_name = "FROM/TO")]
    suspension: Vec<String>,
    /// The instant to report the state at (default: now). Overrides `now` in --line.
    #[arg(long, value_name = "TIME")]
    now: Option<String>,
    /// it (default) or en.
    #[arg(long, default_value = "it")]
    lang: String,
    /// Print the explanation as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct DueArgs {
    /// urgente | alta | normale | bassa.
    #[arg(long)]
    priority: String,
    /// generale (default) | albo_pretorio | in_loco.
    #[arg(long, default_value = "generale")]
    category: String,
    /// Receipt instant, RFC 3339 with offset (default: now).
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// it (default) or en.
    #[arg(long, default_value = "it")]
    lang: String,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("MESSO_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&io::stderr()))
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    messo::install_crypto();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("messo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: Option<&PathBuf>) -> Result<Config, ConfigError> {
    let config = Config::discover(path.map(PathBuf::as_path))?;
    messo::templates::check_config(&config)?;
    tracing::debug!(source = %config.source_name, overrides = config.overrides.len(), "configuration loaded");
    Ok(config)
}

fn build_sla(path: Option<&PathBuf>) -> Result<Sla> {
    let config = load_config(path)?;
    config
        .sla()
        .with_context(|| format!("{}: calendar", config.source_name))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn now() -> Timestamp {
    Timestamp::from_chrono(&chrono::Utc::now())
}

async fn open_store(config: &Config) -> Result<Store> {
    let store = Store::connect(&config.database_url)
        .await
        .context("connecting to database.url")?;
    store.migrate().await.context("applying migrations")?;
    store
        .register_config(config, now())
        .await
        .context("recording the configuration's versions")?;
    Ok(store)
}

fn run(cli: Cli) -> Result<ExitCode> {
    let path = cli.config.as_ref();
    match cli.command {
        Command::Run => run_daemon(load_config(path)?),
        Command::SendTest { channel, to, text } => {
            send_test(&load_config(path)?, &channel, &to, text)
        }
        Command::PecReceipt => pec_receipt(&load_config(path)?),
        Command::Migrate => migrate(&load_config(path)?),
        Command::Admin(cmd) => {
            let config = load_config(path)?;
            runtime()?.block_on(admin_command(config, cmd))
        }
        Command::Template(cmd) => {
            let config = load_config(path)?;
            template_command(&config, cmd)
        }
        Command::Portal(cmd) => {
            let config = load_config(path)?;
            runtime()?.block_on(portal_command(config, cmd))
        }
        Command::Token(TokenCommand::New { name, scopes }) => token_new(&name, &scopes),
        Command::Dev(DevCommand::BenchEngine { changed, rounds }) => {
            let config = load_config(path)?;
            runtime()?.block_on(bench_engine(config, changed, rounds))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Dev(DevCommand::PortalLinks { count, out }) => {
            let config = load_config(path)?;
            runtime()?.block_on(portal_links(config, count, out))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Dev(DevCommand::SeedHistory {
            tickets,
            months,
            until,
            batch,
        }) => {
            let config = load_config(path)?;
            let until = parse_time("until", &until)?;
            runtime()?.block_on(seed_history(config, tickets, months, until, batch))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Dev(DevCommand::Seed(args)) => {
            let config = load_config(path)?;
            runtime()?.block_on(seed(config, args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Report(cmd) => {
            let config = load_config(path)?;
            runtime()?.block_on(report_command(config, cmd))
        }
        Command::Sla(SlaCommand::Rebaseline(args)) => rebaseline(&load_config(path)?, args),
        Command::CheckConfig => check_config(path),
        Command::Doctor(args) => doctor_command(path, args),
        Command::Backup(args) => backup_command(&load_config(path)?, args),
        Command::Restore(args) => restore_command(&load_config(path)?, args),
        Command::Health(args) => health_command(path, args),
        Command::Privacy(cmd) => {
            let config = load_config(path)?;
            runtime()?.block_on(privacy_command(config, cmd))
        }
        Command::Sla(SlaCommand::Batch) => sla_batch(&build_sla(path)?),
        Command::Sla(SlaCommand::Explain(args)) => {
            let sla = build_sla(path)?;
            explain_cmd(&sla, args)
        }
        Command::Sla(SlaCommand::Due(args)) => {
            let sla = build_sla(path)?;
            due_cmd(&sla, args)
        }
    }
}

/// `messo run`: the daemon, until SIGTERM or Ctrl-C.
fn run_daemon(config: Config) -> Result<ExitCode> {
    runtime()?.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("signal received");
            let _ = tx.send(true);
        });
        messo::daemon::run(config, messo::time::system_clock(), rx).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `messo send-test`: one real message through the configured channel, and each attempt.
fn send_test(config: &Config, channel: &str, to: &str, text: Option<String>) -> Result<ExitCode> {
    let Some(name) = messo::domain::Channel::parse(channel) else {
        anyhow::bail!("unknown channel {channel:?}; expected email, pec, sms, io or voice");
    };
    let address = messo::domain::Address::parse(name, to.trim())
        .map_err(|e| anyhow::anyhow!("--to: {} {e}", messo::redact::mask(to)))?;
    let mut channels =
        messo::delivery::dispatch::transports(config).context("setting up the channels")?;
    let transport = channels
        .take(name)
        .context("the channel is not configured")?;
    let stamp = chrono::Utc::now().timestamp();
    let msg = messo::delivery::OutMessage {
        language: messo::domain::Lang::It,
        due_date: None,
        outbox_id: stamp,
        ticket_id: 0,
        number: "TEST".to_owned(),
        kind: messo::domain::Kind::Prova,
        recipient: messo::domain::Recipient::Tester,
        channel: name,
        address,
        subject: format!("Messo: messaggio di prova — {}", config.comune_name),
        text: text.unwrap_or_else(|| {
            format!(
                "Messaggio di prova inviato da Messo per l'URP di {}. Non richiede risposta.",
                config.comune_name
            )
        }),
        html: None,
        reply_to: None,
        attachments: Vec::new(),
    };
    let sent = runtime()?.block_on(transport.send(&msg, false));
    let mut ok = false;
    for a in &sent.attempts {
        out!(
            "{} via {}: {}{}{}{} ({} ms)",
            messo::redact::mask(to),
            a.provider,
            a.outcome.label(),
            a.outcome
                .code()
                .map(|c| format!(" [{c}]"))
                .unwrap_or_default(),
            match &a.outcome {
                messo::delivery::Outcome::Delivered {
                    provider_id: Some(id),
                    ..
                } => format!(" id {id}"),
                _ => String::new(),
            },
            a.outcome
                .reason()
                .map(|r| format!(": {r}"))
                .unwrap_or_default(),
            a.latency_ms
        );
        ok = matches!(a.outcome, messo::delivery::Outcome::Delivered { .. });
    }
    if sent.attempts.is_empty() {
        out!("not sent: no provider is available");
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `messo pec-receipt`: one PEC receipt from standard input; 75 when the store is unreachable.
fn pec_receipt(config: &Config) -> Result<ExitCode> {
    use messo::delivery::dispatch::ReceiptOutcome;
    let mut raw = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut raw)
        .context("reading the message on standard input")?;
    let now = messo::time::Timestamp::from_chrono(&chrono::Utc::now());
    let result = runtime()?.block_on(async {
        let store = Store::connect(&config.database_url).await?;
        messo::delivery::dispatch::apply_pec_receipt(&store, config, &raw, now).await
    });
    match result {
        Ok(ReceiptOutcome::Recorded {
            outbox_id,
            kind,
            failed,
            fallback,
        }) => {
            out!(
                "message {outbox_id}: {kind} recorded{}",
                match (failed, fallback) {
                    (true, Some(c)) => format!("; not delivered, {c} owed instead"),
                    (true, None) => "; not delivered".to_owned(),
                    _ => String::new(),
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(ReceiptOutcome::Duplicate { outbox_id }) => {
            out!("message {outbox_id}: receipt already recorded");
            Ok(ExitCode::SUCCESS)
        }
        Ok(ReceiptOutcome::Ignored(why)) => {
            out!("ignored: {why}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            tracing::error!(error = %e, "PEC receipt not recorded; the delivery agent should try again");
            Ok(ExitCode::from(75))
        }
    }
}

/// `messo migrate`.
fn migrate(config: &Config) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let store = Store::connect(&config.database_url)
            .await
            .context("connecting to database.url")?;
        store.migrate().await.context("applying migrations")?;
        out!("migrations applied ({:?})", store.backend());
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `messo token new`: a fresh token, and the configuration entry holding its hash.
fn token_new(name: &str, scopes: &str) -> Result<ExitCode> {
    for s in scopes.split(',') {
        if !matches!(s, "read" | "write" | "portal") {
            bail!("--scopes: unknown scope {s:?}; expected read, write, read,write or portal");
        }
    }
    let t = messo::http::new_token()?;
    let list = scopes
        .split(',')
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ");
    out!(
        "token (give it to the client; it is not stored anywhere): {}",
        t.token
    );
    out!();
    out!("[[http.tokens]]");
    out!("name = \"{name}\"");
    out!("id = \"{}\"", t.id);
    out!("hash = \"{}\"", t.hash);
    out!("scopes = [{list}]");
    Ok(ExitCode::SUCCESS)
}

/// `messo sla rebaseline`.
fn rebaseline(config: &Config, args: RebaselineArgs) -> Result<ExitCode> {
    let moved = runtime()?.block_on(async {
        let store = open_store(config).await?;
        let moved = store
            .tickets()
            .rebaseline(args.ticket.as_deref(), &args.reason, now())
            .await?;
        anyhow::Ok(moved)
    })?;
    out!("{moved} ticket(s) moved to the current calendar and policy");
    Ok(ExitCode::SUCCESS)
}

/// The codice fiscale of `--cf`, checked.
fn fiscal_code(cf: &str) -> Result<messo::domain::FiscalCode> {
    messo::domain::FiscalCode::parse(cf).map_err(|e| anyhow::anyhow!("--cf: {e}"))
}

/// `messo privacy export|erase`.
async fn privacy_command(config: Config, cmd: PrivacyCommand) -> Result<ExitCode> {
    use messo::store::Erasure;
    match cmd {
        PrivacyCommand::Export { cf } => {
            let cf = fiscal_code(&cf)?;
            let store = open_store(&config).await?;
            let data = store.privacy().export(&cf, now()).await?;
            out!("{}", serde_json::to_string_pretty(&data)?);
            Ok(ExitCode::SUCCESS)
        }
        PrivacyCommand::Erase {
            cf,
            reason,
            operator,
        } => {
            let cf = fiscal_code(&cf)?;
            let reason = reason.trim();
            if reason.is_empty() {
                bail!("--reason: say why the data is erased (e.g. the request's protocol number)");
            }
            let operator = operator
                .or_else(|| std::env::var("USER").ok())
                .filter(|o| !o.trim().is_empty())
                .unwrap_or_else(|| "cli".to_owned());
            let store = open_store(&config).await?;
            let done = store
                .privacy()
                .erase(
                    &cf,
                    operator.trim(),
                    reason,
                    &config.inbound.attachments_dir,
                    now(),
                )
                .await?;
            match done {
                Erasure::Erased {
                    id,
                    counts,
                    tickets,
                } => {
                    out!(
                        "erased (record {id}): {} ticket(s) pseudonymised{}, {} message(s), {} \
                         inbound record(s), {} attachment file(s), {} cached domicile(s)",
                        counts.closed_ticket_contacts,
                        if tickets.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", tickets.join(", "))
                        },
                        counts.message_bodies,
                        counts.inbound,
                        counts.attachments,
                        counts.domiciles
                    );
                    out!("kept:");
                    for (what, why) in messo::store::KEPT {
                        out!("  - {what}: {why}");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Erasure::Refused { open, sending } => {
                    let mut e = std::io::stderr().lock();
                    writeln!(e, "messo: erasure refused, nothing was changed:")?;
                    if !open.is_empty() {
                        writeln!(
                            e,
                            "  - ticket(s) {} still open: the request is still being handled; \
                             the citizen's contacts are needed to answer it. Erase again once \
                             closed.",
                            open.join(", ")
                        )?;
                    }
                    if !sending.is_empty() {
                        writeln!(
                            e,
                            "  - ticket(s) {}: a message to the citizen is still being sent. \
                             Erase again once it is delivered or given up.",
                            sending.join(", ")
                        )?;
                    }
                    writeln!(e, "what an erasure always keeps:")?;
                    for (what, why) in messo::store::KEPT {
                        writeln!(e, "  - {what}: {why}")?;
                    }
                    Ok(ExitCode::from(3))
                }
            }
        }
    }
}

/// `messo sla batch`: JSON Lines in, one answer per line out.
fn sla_batch(sla: &Sla) -> Result<ExitCode> {
    let stdin = io::stdin().lock();
    let stdout = io::stdout().lock();
    let summary = batch::run(sla, stdin, stdout).context("sla batch: reading or writing")?;
    tracing::debug!(lines = summary.lines, "batch done");
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn seed(config: Config, args: SeedArgs) -> Result<()> {
    let store = open_store(&config).await?;
    let start_at = now();
    let mut g = messo::seed::Lcg(7);
    match args.via.as_str() {
        "store" => seed_store(&store, &mut g, &args, start_at).await?,
        "inbox" => seed_inbox(&store, &mut g, &args, start_at).await?,
        other => bail!("--via: unknown mode {other:?}; expected store|inbox"),
    }
    let (open, with_instant) = store.monitor().ticket_counts().await?;
    // The daemon's question: which tickets' next SLA instant has come? Asked at instants from
    // now to ten days ahead, so the answer ranges from few rows to a full batch of 500.
    let runs = 200;
    let mut found = 0usize;
    let t0 = std::time::Instant::now();
    for k in 0..runs {
        let at = start_at.plus(k * 10 * 86_400 / runs);
        found += store.tickets().due_for_check(at, 500).await?.len();
    }
    let per = t0.elapsed().as_secs_f64() * 1000.0 / runs as f64;
    out!(
        "store holds {open} open tickets ({with_instant} with a next SLA instant); \
         due_for_check(limit 500): {per:.2} ms per query over {runs} queries, {:.0} rows on average",
        found as f64 / runs as f64
    );
    out!("plan:\n{}", store.tickets().explain_due_query().await?);
    Ok(())
}

/// `messo dev seed-history`: tickets with whole histories, written in bulk after the store's
/// highest ticket id.
async fn seed_history(
    config: Config,
    tickets: i64,
    months: i64,
    until: Timestamp,
    batch: usize,
) -> Result<()> {
    let store = open_store(&config).await?;
    let first = store.monitor().max_ticket_id().await? + 1;
    let mut g = messo::seed::Lcg(17);
    let span = months.max(1) * 30 * 86_400;
    let started = std::time::Instant::now();
    let (mut events, mut open) = (0usize, 0usize);
    let mut id = first;
    while id < first + tickets {
        let n = (first + tickets - id).min(batch.max(1) as i64);
        let rows: Vec<_> = (id..id + n)
            .filter_map(|i| messo::seed::history(&mut g, i, until, span))
            .collect();
        events += rows.iter().map(|t| t.events.len()).sum::<usize>();
        open += rows.iter().filter(|t| t.closed_at.is_none()).count();
        store.tickets().load_bulk(&rows).await?;
        id += n;
    }
    let secs = started.elapsed().as_secs_f64();
    out!(
        "seed-history: {tickets} tickets ({open} open) and {events} events in {secs:.1} s \
         ({:.0} tickets/s)",
        tickets as f64 / secs
    );
    Ok(())
}

/// `messo dev seed --via store`: tickets created through the store API, a batch at a time.
async fn seed_store(
    store: &Store,
    g: &mut messo::seed::Lcg,
    args: &SeedArgs,
    start_at: Timestamp,
) -> Result<()> {
    use messo::seed::ticket_body;
    use messo::ticket::{NewTicket, Source};
    let started = std::time::Instant::now();
    let batch = args.batch.max(1);
    let mut created = 0u64;
    let mut i = 0u64;
    while i < args.tickets {
        let n = (args.tickets - i).min(batch as u64);
        let tickets = (i..i + n)
            .map(|k| {
                NewTicket::from_json(&ticket_body(g, &args.prefix, k, start_at, 20 * 86_400))
                    .map_err(|e| anyhow::anyhow!("generated ticket {k} invalid: {e:?}"))
            })
            .collect::<Result<Vec<_>>>()?;
        created += store
            .tickets()
            .create_many(&tickets, Source::Crm, start_at)
            .await?;
        i += n;
    }
    let secs = started.elapsed().as_secs_f64();
    out!(
        "store: {created} tickets created in {secs:.1} s ({:.0} tickets/s)",
        created as f64 / secs
    );
    Ok(())
}

/// `messo dev seed --via inbox`: rows written as a CRM's direct SQL would, then the poller's
/// passes until the inbox is empty.
async fn seed_inbox(
    store: &Store,
    g: &mut messo::seed::Lcg,
    args: &SeedArgs,
    start_at: Timestamp,
) -> Result<()> {
    let started = std::time::Instant::now();
    let batch = args.batch.max(1);
    let mut i = 0u64;
    while i < args.tickets {
        let n = (args.tickets - i).min(batch as u64);
        let rows: Vec<(&str, String, String)> = (i..i + n)
            .map(|k| {
                let body = messo::seed::ticket_body(g, &args.prefix, k, start_at, 20 * 86_400);
                let number = body["number"].as_str().unwrap_or_default().to_owned();
                ("ticket", number, body.to_string())
            })
            .collect();
        store.tickets().insert_inbox_rows(&rows).await?;
        i += n;
    }
    let inserted = started.elapsed().as_secs_f64();
    out!(
        "inbox: {} rows written by the \"CRM\" in {inserted:.1} s ({:.0} rows/s)",
        args.tickets,
        args.tickets as f64 / inserted
    );
    let picked = std::time::Instant::now();
    let mut accepted = 0u64;
    loop {
        let r = store.tickets().process_inbox(now(), batch as i64).await?;
        accepted += r.accepted;
        if r.accepted + r.unchanged + r.rejected == 0 {
            break;
        }
    }
    let secs = picked.elapsed().as_secs_f64();
    out!(
        "inbox: {accepted} rows validated and ingested by the poller in {secs:.1} s ({:.0} tickets/s)",
        accepted as f64 / secs
    );
    Ok(())
}

async fn bench_engine(config: Config, changed: i64, rounds: u32) -> Result<()> {
    use messo::daemon::Engine;
    let store = open_store(&config).await?;
    let engine = Engine::new(store.clone(), config.notify.clone());
    let t0 = std::time::Instant::now();
    let caught = engine.cycle(now()).await?;
    let secs = t0.elapsed().as_secs_f64();
    out!(
        "catch-up: {} tickets decided, {} notices owed, in {secs:.1} s ({:.0} tickets/s)",
        caught.tickets,
        caught.owed,
        caught.tickets as f64 / secs.max(1e-9)
    );
    let (open, with_instant) = store.monitor().ticket_counts().await?;
    let t = std::time::Instant::now();
    let mut found = 0;
    for k in 0..200 {
        found += store
            .tickets()
            .due_for_check(now().plus(k * 3_000), 500)
            .await?
            .len();
    }
    out!(
        "{open} open tickets, {with_instant} with a next instant; due_for_check(limit 500): {:.2} ms per query, {:.0} rows on average",
        t.elapsed().as_secs_f64() * 1000.0 / 200.0,
        found as f64 / 200.0
    );
    let max = store.monitor().max_ticket_id().await?;
    let mut g = messo::seed::Lcg(11);
    let mut times = Vec::new();
    for _ in 0..rounds {
        let from = 1 + g.below((max - changed).max(1) as u64) as i64;
        let at = now();
        let marked = store.outbox().mark_for_check(from, changed, at).await?;
        let t = std::time::Instant::now();
        let r = engine.cycle(at).await?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        times.push(ms);
        out!(
            "pass: {marked} tickets marked changed among {open} open; decided {} in {ms:.1} ms ({} notices owed)",
            r.tickets,
            r.owed
        );
    }
    times.sort_by(f64::total_cmp);
    if let (Some(min), Some(max)) = (times.first(), times.last()) {
        out!(
            "engine pass over {changed} changed tickets: median {:.1} ms, min {min:.1} ms, max {max:.1} ms",
            times[times.len() / 2]
        );
    }
    Ok(())
}

/// `dev portal-links`: tickets with ids 1, 1 + k, 1 + 2k, … up to the highest id (missing ids
/// are skipped), each with a link issued now, for load tests of the portal.
async fn portal_links(config: Config, count: i64, out: Option<PathBuf>) -> Result<()> {
    if count < 1 {
        bail!("--count must be at least 1");
    }
    let store = open_store(&config).await?;
    let now = now();
    let keys = messo::http::portal::link_keys(&config, &store, now).await?;
    let maker = messo::http::portal::link_maker(&config, keys);
    let max = store.monitor().max_ticket_id().await?;
    let step = (max / count).max(1);
    let mut w: Box<dyn Write> = match &out {
        Some(path) => Box::new(io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(io::BufWriter::new(io::stdout().lock())),
    };
    let mut written = 0;
    let mut id = 1;
    while id <= max && written < count {
        if let Some(t) = store.portal().portal_ticket_by_id(id).await? {
            let cf = t.ticket.citizen.fiscal_code.as_deref().unwrap_or_default();
            let token = maker.keys.sign(id, now, maker.valid_days);
            writeln!(w, "{}\t{token}\t{cf}", t.ticket.number)?;
            written += 1;
        }
        id += step;
    }
    w.flush()?;
    if let Some(path) = out {
        eprintln!("{written} status links written to {}", path.display());
    }
    Ok(())
}

fn check_config(path: Option<&PathBuf>) -> Result<ExitCode> {
    match load_config(path) {
        Ok(config) => {
            config
                .sla()
                .with_context(|| format!("{}: calendar", config.source_name))?;
            let mut out = io::stdout().lock();
            writeln!(out, "{}: configuration valid", config.source_name)?;
            writeln!(
                out,
                "  comune {}, time zone {}, {} target rows, database {}",
                config.comune_name,
                config.calendar.time_zone.name(),
                config.policy.rules().len(),
                if config.database_url.starts_with("sqlite:") {
                    "SQLite"
                } else {
                    "PostgreSQL"
                }
            )?;
            for (key, var) in &config.overrides {
                writeln!(out, "  {key} set by {var}")?;
            }
            if let Some(w) = config.inbound.mail_auth_warning() {
                writeln!(out, "  warning: {w}")?;
            }
            // [smtp.dkim]: the key must sign; the record to publish is printed.
            if let Some(d) = config.smtp.as_ref().and_then(|s| s.dkim.as_ref()) {
                match messo::delivery::dispatch::dkim_signer(&config, d) {
                    Ok(signer) => {
                        writeln!(out, "  {}", signer.describe())?;
                        writeln!(out, "  publish this DNS TXT record:")?;
                        writeln!(out, "    name:  {}", signer.record_name())?;
                        writeln!(out, "    value: {}", signer.public_key_record())?;
                        let sender = config
                            .smtp
                            .as_ref()
                            .and_then(|s| s.sender.as_deref())
                            .unwrap_or(&config.notify.sender_email);
                        let from = sender.rsplit('@').next().unwrap_or("").to_ascii_lowercase();
                        let aligned = from == d.domain
                            || from.ends_with(&format!(".{}", d.domain))
                            || d.domain.ends_with(&format!(".{from}"));
                        if !aligned {
                            writeln!(
                                out,
                                "  warning: smtp.dkim.domain {} is not the sender's domain {from}: \
                                 DMARC will not count the signature as aligned",
                                d.domain
                            )?;
                        }
                    }
                    Err(e) => {
                        drop(out);
                        eprintln!("messo: {}: {e}", config.source_name);
                        return Ok(ExitCode::from(2));
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("messo: {e}");
            Ok(ExitCode::from(2))
        }
    }
}

fn parse_time(flag: &str, text: &str) -> Result<Timestamp> {
    Timestamp::parse_rfc3339(text).with_context(|| format!("--{flag}"))
}

fn parse_lang(text: &str) -> Result<Lang> {
    text.parse::<Lang>().context("--lang")
}

fn parse_suspension(text: &str) -> Result<Suspension> {
    let Some((from, to)) = text.split_once('/') else {
        bail!("--suspension {text:?}: expected FROM/TO, or FROM/ while still open");
    };
    let from = parse_time("suspension", from)?;
    let to = if to.is_empty() {
        None
    } else {
        Some(parse_time("suspension", to)?)
    };
    Suspension::new(from, to).context("--suspension")
}

fn explain_cmd(sla: &Sla, args: ExplainArgs) -> Result<ExitCode> {
    let lang = parse_lang(&args.lang)?;
    let flag_now = args
        .now
        .as_deref()
        .map(|t| parse_time("now", t))
        .transpose()?;
    let (ticket, line_now) = if args.received_at.is_some() {
        let received_at = parse_time("received-at", args.received_at.as_deref().unwrap_or(""))?;
        let priority: Priority = args
            .priority
            .as_deref()
            .context("--priority is required with --received-at")?
            .parse()
            .context("--priority")?;
        let category: Category = args
            .category
            .as_deref()
            .unwrap_or("generale")
            .parse()
            .context("--category")?;
        let suspensions = args
            .suspension
            .iter()
            .map(|s| parse_suspension(s))
            .collect::<Result<Vec<_>>>()?;
        (
            TicketTimes {
                id: args.id,
                received_at,
                category,
                priority,
                suspensions,
            },
            None,
        )
    } else {
        let text = match args.line {
            Some(l) => l,
            None => {
                let mut l = String::new();
                io::stdin()
                    .lock()
                    .read_line(&mut l)
                    .context("reading one JSON line from standard input")?;
                l
            }
        };
        let trimmed = text.trim_end_matches(['\n', '\r']);
        let line = batch::parse_line(trimmed.as_bytes()).map_err(|e| {
            anyhow::anyhow!(
                "{}{}",
                e.id.map(|id| format!("{id}: ")).unwrap_or_default(),
                e.message
            )
        })?;
        (
            TicketTimes {
                id: line.id.map(|c| c.into_owned()),
                received_at: line.received_at,
                category: line.category,
                priority: line.priority,
                suspensions: line.suspensions,
            },
            Some(line.now),
        )
    };
    let now = flag_now
        .or(line_now)
        .unwrap_or_else(|| Timestamp::from_chrono(&chrono::Utc::now()));
    let e = explain::explain(sla, ticket, now)?;
    let mut out = io::stdout().lock();
    if args.json {
        writeln!(out, "{}", explain::render_json(sla, &e))?;
    } else {
        out.write_all(explain::render_text(sla, &e, lang).as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn due_cmd(sla: &Sla, args: DueArgs) -> Result<ExitCode> {
    let lang = parse_lang(&args.lang)?;
    let priority: Priority = args.priority.parse().context("--priority")?;
    let category: Category = args.category.parse().context("--category")?;
    let at = match args.at.as_deref() {
        Some(t) => parse_time("at", t)?,
        None => Timestamp::from_chrono(&chrono::Utc::now()),
    };
    let status = sla.status_normalized(at, category, priority, &[], at)?;
    let due = status.due_at.context("no due instant")?;
    let cal = &sla.calendar;
    let mut out = io::stdout().lock();
    if args.json {
        let v = serde_json::json!({
            "received_at": cal.format_rfc3339(at),
            "priority": priority.as_str(),
            "category": category.as_str(),
            "clock": status.clock.as_str(),
            "target_s": status.target_s,
            "counting_from": cal.format_rfc3339(status.counting_from),
            "due_at": cal.format_rfc3339(due),
        });
        writeln!(out, "{v}")?;
        return Ok(ExitCode::SUCCESS);
    }
    let (recv, from, due_text) = (
        locale::date_time(lang, cal, at),
        locale::date_time(lang, cal, status.counting_from),
        locale::date_time(lang, cal, due),
    );
    match lang {
        Lang::It => {
            writeln!(
                out,
                "Una richiesta con priorità {priority} (categoria {}) ricevuta {recv} va evasa entro {due_text}.",
                category.italian()
            )?;
            if status.counting_from != at {
                writeln!(
                    out,
                    "Ricevuta fuori orario d'ufficio: il termine decorre da {from}."
                )?;
            }
        }
        Lang::En => {
            writeln!(
                out,
                "A request with priority {} ({}) received {recv} is due by {due_text}.",
                priority.english(),
                category.english()
            )?;
            if status.counting_from != at {
                writeln!(
                    out,
                    "Received outside office hours: the clock starts {from}."
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn report_command(config: Config, cmd: ReportCommand) -> Result<ExitCode> {
    use messo::monitoring::{self, ReportRequest, render};
    use messo::reports::{GroupBy, Period};
    let args = match cmd {
        ReportCommand::Criticalities => {
            let store = open_store(&config).await?;
            let list = monitoring::criticalities(&store, &config, now()).await?;
            if list.is_empty() {
                out!("Nessuna criticità rilevata.");
            }
            for c in &list {
                let who = c
                    .ticket
                    .as_deref()
                    .map(|n| format!("{n}: "))
                    .unwrap_or_default();
                out!("[{}] {who}{}", c.kind, c.reason);
            }
            return Ok(ExitCode::SUCCESS);
        }
        ReportCommand::Compliance(args) => args,
    };
    let date = |flag: &str, v: &str| {
        chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .with_context(|| format!("--{flag}: expected a date YYYY-MM-DD, found {v:?}"))
    };
    let period = match (&args.month, &args.from, &args.to) {
        (Some(m), _, _) => monitoring::month_period(m)
            .with_context(|| format!("--month: expected a month YYYY-MM, found {m:?}"))?,
        (None, Some(f), Some(t)) => {
            Period::new(date("from", f)?, date("to", t)?).context("--from/--to")?
        }
        _ => bail!("give --month, or --from and --to"),
    };
    let group = GroupBy::parse(&args.group_by).context("--group-by")?;
    let format = args.format.as_str();
    if !["table", "csv", "excel", "open-data", "json", "html"].contains(&format) {
        bail!("--format: unknown format {format:?}; expected table|csv|excel|open-data|json|html");
    }
    let store = open_store(&config).await?;
    let now = now();
    let req = ReportRequest {
        period,
        group,
        office: args.office.clone(),
        tickets: Vec::new(),
        comments: false,
    };
    let report = monitoring::compliance(&store, &config, &req, now).await?;
    let body: Vec<u8> = match format {
        "csv" => render::csv(&report, render::CsvStyle::Plain),
        "excel" => render::csv(&report, render::CsvStyle::Excel),
        "open-data" => render::open_data_csv(&report),
        "json" => {
            let mut v = serde_json::to_vec_pretty(&report)?;
            v.push(b'\n');
            v
        }
        "html" | "table" => {
            let crits = monitoring::criticalities(&store, &config, now).await?;
            if format == "html" {
                render::html(&report, &crits).into_bytes()
            } else {
                render::text(&report, &crits).into_bytes()
            }
        }
        _ => Vec::new(),
    };
    match &args.out {
        Some(path) => std::fs::write(path, &body)
            .with_context(|| format!("--out: cannot write {}", path.display()))?,
        None => io::stdout().lock().write_all(&body)?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn portal_command(config: Config, cmd: PortalCommand) -> Result<ExitCode> {
    if !config.portal.enabled {
        bail!("the portal is off (portal.enabled = false): there are no status links");
    }
    let store = open_store(&config).await?;
    let now = now();
    match cmd {
        PortalCommand::Link { number } => {
            let Some(t) = store.tickets().ticket(&number).await? else {
                bail!("there is no ticket {number}");
            };
            let keys = messo::http::portal::link_keys(&config, &store, now).await?;
            let maker = messo::http::portal::link_maker(&config, keys);
            out!("{}", maker.url(t.id, now));
        }
        PortalCommand::Revoke { number, reason } => {
            if reason.trim().is_empty() {
                bail!("--reason must say why the links are revoked");
            }
            let actor = format!(
                "cli:{}",
                std::env::var("USER").unwrap_or_else(|_| "root".to_owned())
            );
            match store
                .portal()
                .revoke_links(&number, now, &actor, reason.trim())
                .await?
            {
                Some(at) => out!("links to {number} issued until {at} no longer open"),
                None => bail!("there is no ticket {number}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn admin_command(config: Config, cmd: AdminCommand) -> Result<ExitCode> {
    let store = Store::connect(&config.database_url)
        .await
        .context("connecting to database.url")?;
    store.migrate().await.context("applying migrations")?;
    let now = Timestamp::from_chrono(&chrono::Utc::now());
    let actor = format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "root".to_owned())
    );
    match cmd {
        AdminCommand::User { name, role } => {
            admin_user(&store, &config, &name, role, &actor, now).await?
        }
        AdminCommand::Disable { name } => set_disabled(&store, &name, true, &actor, now).await?,
        AdminCommand::Enable { name } => set_disabled(&store, &name, false, &actor, now).await?,
        AdminCommand::Token { name, label } => admin_token(&store, &name, &label, now).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `messo admin user`: a new user, or an existing one's new password (and role).
async fn admin_user(
    store: &Store,
    config: &Config,
    name: &str,
    role: Option<String>,
    actor: &str,
    now: Timestamp,
) -> Result<()> {
    use messo::http::admin::{hash_secret, password_problem, valid_username};
    use messo::store::{Role, UserChange};
    let name = name.trim().to_lowercase();
    if !valid_username(&name) {
        bail!("the user name must be 3-64 characters among a-z 0-9 . _ -");
    }
    let role: Option<Role> = role
        .map(|r| r.parse().map_err(anyhow::Error::msg))
        .transpose()?;
    let password = match std::env::var("MESSO_ADMIN_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            let mut line = String::new();
            io::stdin().lock().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    if let Some(p) = password_problem(&password) {
        bail!("{p} (MESSO_ADMIN_PASSWORD or standard input)");
    }
    let hash = hash_secret(&password)?;
    let u = if store.admin().admin_user(&name).await?.is_none() {
        store
            .admin()
            .create_admin_user(&name, role.unwrap_or(Role::Editor), &hash, actor, now)
            .await?
    } else {
        let change = UserChange {
            role,
            password_hash: Some(hash),
            disabled: None,
        };
        let done = store
            .admin()
            .change_admin_user(&name, &change, actor, now)
            .await?
            .with_context(|| format!("no user {name:?}"))?;
        out!(
            "user {name} changed: {} sessions ended, {} tokens revoked",
            done.sessions_ended,
            done.tokens_revoked
        );
        done.user
    };
    if u.disabled {
        out!(
            "user {} ({}) is disabled: `messo admin enable {}` lets her sign in",
            u.username,
            u.role.as_str(),
            u.username
        );
    } else {
        out!(
            "user {} ({}) ready: sign in at {}/admin",
            u.username,
            u.role.as_str(),
            config.http.public_base_url.trim_end_matches('/')
        );
    }
    Ok(())
}

/// `messo admin token`: a bearer token for an enabled user, printed once.
async fn admin_token(store: &Store, name: &str, label: &str, now: Timestamp) -> Result<()> {
    use messo::http::admin::{hash_secret, new_token_secret};
    let Some(user) = store.admin().admin_user(name).await? else {
        bail!("no user {name:?} (create it with `messo admin user {name}`)");
    };
    if user.disabled {
        bail!(
            "user {name:?} is disabled: a token would not work (`messo admin enable {name}` first)"
        );
    }
    let secret = new_token_secret()?;
    let hash = hash_secret(&secret)?;
    let id = store
        .admin()
        .add_admin_token(&user, label, &hash, now)
        .await?;
    out!("token for {name} (shown once; send it as Authorization: Bearer …):");
    out!("messo_{id}_{secret}");
    Ok(())
}

/// `messo admin disable|enable`: the same rules as the API (sessions end, tokens are revoked,
/// never the last enabled admin).
async fn set_disabled(
    store: &Store,
    name: &str,
    disable: bool,
    actor: &str,
    now: Timestamp,
) -> Result<()> {
    let change = messo::store::UserChange {
        disabled: Some(disable),
        ..messo::store::UserChange::default()
    };
    let Some(done) = store
        .admin()
        .change_admin_user(name, &change, actor, now)
        .await?
    else {
        bail!("no user {name:?}");
    };
    match (disable, done.changed) {
        (true, true) => out!(
            "user {name} disabled: {} sessions ended, {} tokens revoked",
            done.sessions_ended,
            done.tokens_revoked
        ),
        (false, true) => out!("user {name} enabled: she signs in with her password"),
        (true, false) => out!("user {name} was already disabled"),
        (false, false) => out!("user {name} was already enabled"),
    }
    Ok(())
}

fn template_command(config: &Config, cmd: TemplateCommand) -> Result<ExitCode> {
    use messo::templates::{Catalog, Settings, Templates};
    let catalog = Catalog::bundled().context("reading the bundled templates")?;
    let templates = Templates::new(catalog, Settings::from_config(config));
    match cmd {
        TemplateCommand::Check => template_check(config, &templates),
        TemplateCommand::Render {
            audience,
            kind,
            lang,
            channel,
            sample,
        } => template_render(&templates, &audience, &kind, &lang, &channel, sample),
    }
}

/// `messo template check`: every bundled default and live version against its samples.
fn template_check(config: &Config, templates: &messo::templates::Templates) -> Result<ExitCode> {
    let lives = runtime()?.block_on(async {
        let store = Store::connect(&config.database_url)
            .await
            .context("connecting to database.url")?;
        store.migrate().await.context("applying migrations")?;
        anyhow::Ok(store.templates().live_templates().await?)
    })?;
    let mut bad = 0;
    let defaults: Vec<_> = templates
        .catalog()
        .defaults
        .iter()
        .map(|(k, d)| (k.clone(), 0, d.content.clone()))
        .collect();
    // A version stored before its notice had IO parts is installed with the default's.
    let live: Vec<_> = lives
        .into_iter()
        .map(|l| {
            let content = match templates.catalog().defaults.get(&l.key) {
                Some(d) => messo::templates::with_default_io(&l.content, &d.content),
                None => l.content,
            };
            (l.key, l.version, content)
        })
        .collect();
    for (key, version, content) in defaults.iter().chain(live.iter()) {
        match templates.check(key, content) {
            Ok(previews) => {
                let parts = previews
                    .iter()
                    .filter_map(|p| p.sms.as_ref())
                    .map(|s| s.budget.parts)
                    .max();
                out!(
                    "ok   {key} v{version}{}",
                    parts
                        .map(|p| format!(" (SMS up to {p} parts)"))
                        .unwrap_or_default()
                );
            }
            Err(problems) => {
                bad += 1;
                for p in problems {
                    out!("FAIL {key} v{version}: {p}");
                }
            }
        }
    }
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `messo template render`: one bundled template rendered with one of its samples.
fn template_render(
    templates: &messo::templates::Templates,
    audience: &str,
    kind: &str,
    lang: &str,
    channel: &str,
    sample: usize,
) -> Result<ExitCode> {
    use messo::templates::{Audience, Key};
    let audience: Audience = audience.parse().map_err(anyhow::Error::msg)?;
    let lang: Lang = lang.parse().map_err(|e| anyhow::anyhow!("--lang: {e}"))?;
    let Some(channel) = messo::domain::Channel::parse(channel) else {
        bail!("--channel: unknown channel {channel:?}; expected email, pec, sms, voice or io");
    };
    let key = Key::new(audience, kind, lang);
    let (Some(d), Some(kind)) = (
        templates.catalog().defaults.get(&key),
        messo::domain::Kind::parse(kind),
    ) else {
        bail!("no template {key}");
    };
    let Some(payload) = d.samples.get(sample) else {
        bail!("--sample: {key} has {} samples", d.samples.len());
    };
    let m = templates
        .render_message(audience, kind, lang, channel, payload)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if channel == messo::domain::Channel::Sms {
        let b = messo::templates::sms::budget(&m.text);
        out!("{}", m.text);
        out!(
            "-- {} characters, {} part(s), {}",
            b.units,
            b.parts,
            b.encoding.as_str()
        );
    } else {
        out!("Subject: {}", m.subject);
        out!();
        out!("{}", m.text);
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------------
// `messo doctor` (src/doctor/).

/// `messo doctor`: every check, printed as text or JSON; exit status 0 when nothing failed, 1
/// on a failure (or a warning with --strict), 2 on a usage error.
fn doctor_command(path: Option<&PathBuf>, args: DoctorArgs) -> Result<ExitCode> {
    use messo::doctor::{self, Format};
    let Some(format) = Format::parse(&args.format) else {
        eprintln!("--format: expected text or json, found {:?}", args.format);
        return Ok(ExitCode::from(doctor::EXIT_USAGE));
    };
    let report = match load_config(path) {
        Ok(config) => {
            let options = doctor::Options {
                send_test_to: args.send_test_to,
                nameserver: args.nameserver,
                // The published DKIM key is compared with the one Messo signs with.
                dkim_record: Some(|d| {
                    messo::delivery::dkim::public_key_record(d).map_err(|e| e.to_string())
                }),
                ..doctor::Options::default()
            };
            runtime()?.block_on(doctor::run(&config, &options))
        }
        Err(e) => doctor::invalid_config(&e),
    };
    write!(io::stdout().lock(), "{}", report.render(format))?;
    Ok(ExitCode::from(report.exit_code(args.strict)))
}

// ---------------------------------------------------------------------------------------------
// `messo health` (the container image's health check).

/// Exit 0 when the daemon answers its readiness check with 200, 1 otherwise (with the reason on
/// standard error). Without `--url`, `http.listen` of the configuration, on loopback when it
/// listens on every address.
fn health_command(path: Option<&PathBuf>, args: HealthArgs) -> Result<ExitCode> {
    use messo::http::health;
    let url = match args.url {
        Some(url) => url,
        None => health::readyz_url(load_config(path)?.http.listen),
    };
    match runtime()?.block_on(health::check(&url, health::DEFAULT_TIMEOUT)) {
        Ok(ready) => {
            out!("{}: {}", ready.url, ready.body);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("messo health: not ready: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// `messo backup` and `messo restore` (src/store/backup.rs).

fn backup_command(config: &Config, args: BackupArgs) -> Result<ExitCode> {
    let r = runtime()?
        .block_on(messo::store::backup::backup(&config.database_url, &args.to))
        .context("backup")?;
    out!(
        "backup written: {} ({} bytes, {:?}): {} tickets, {} outbox rows, migration {}",
        r.path.display(),
        r.bytes,
        r.backend,
        r.tickets,
        r.outbox,
        r.migration
            .map_or_else(|| "none".to_owned(), |v| v.to_string())
    );
    Ok(ExitCode::SUCCESS)
}

fn restore_command(config: &Config, args: RestoreArgs) -> Result<ExitCode> {
    let r = runtime()?
        .block_on(messo::store::backup::restore(
            &config.database_url,
            &args.from,
        ))
        .context("restore")?;
    for k in &r.kept {
        out!("the replaced store was kept as {}", k.display());
    }
    out!(
        "restored from {} ({:?}), migrated forward: {} tickets, {} outbox rows",
        args.from.display(),
        r.backend,
        r.tickets,
        r.outbox
    );
    Ok(ExitCode::SUCCESS)
}
