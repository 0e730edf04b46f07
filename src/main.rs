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
use messo::time::Timestamp;
use messo::{batch, locale};

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
    /// Validate the configuration and report every problem with its key path.
    CheckConfig,
    /// The SLA clock: batch answers, explanations, quotes for the front desk.
    #[command(subcommand)]
    Sla(SlaCommand),
}

#[derive(Debug, Subcommand)]
enum SlaCommand {
    /// Read JSON Lines on standard input, write one JSON answer per line (see docs/sla.md).
    Batch,
    /// Explain, day by day, how one ticket's deadline was reached.
    Explain(ExplainArgs),
    /// When would a request received now (or at --at) be due?
    Due(DueArgs),
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
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
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
    tracing::debug!(source = %config.source_name, overrides = config.overrides.len(), "configuration loaded");
    Ok(config)
}

fn build_sla(path: Option<&PathBuf>) -> Result<Sla> {
    let config = load_config(path)?;
    config
        .sla()
        .with_context(|| format!("{}: calendar", config.source_name))
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::CheckConfig => check_config(cli.config.as_ref()),
        Command::Sla(SlaCommand::Batch) => {
            let sla = build_sla(cli.config.as_ref())?;
            let stdin = io::stdin().lock();
            let stdout = io::stdout().lock();
            let summary =
                batch::run(&sla, stdin, stdout).context("sla batch: reading or writing")?;
            tracing::debug!(lines = summary.lines, "batch done");
            Ok(ExitCode::SUCCESS)
        }
        Command::Sla(SlaCommand::Explain(args)) => {
            let sla = build_sla(cli.config.as_ref())?;
            explain_cmd(&sla, args)
        }
        Command::Sla(SlaCommand::Due(args)) => {
            let sla = build_sla(cli.config.as_ref())?;
            due_cmd(&sla, args)
        }
    }
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
