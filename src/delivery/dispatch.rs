//! The dispatcher: leases due outbox rows, sends them concurrently through their channels, and
//! records the results in batches.
//!
//! Nothing is lost on a crash: a row is `sending` (leased) from before its first byte goes out
//! until its result is committed; a lease that outlives its holder expires and the row is
//! leased again *in doubt*, which the channel settles without a blind resend (an SMS provider
//! is asked about the order id; an e-mail is resent with the same Message-ID and counted).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tracing::Instrument;

use super::fallback::{DeadRow, replacement};
use super::file::FileChannel;
use super::sms::SmsChannel;
use super::smtp::{SmtpChannel, SmtpSetupError};
use super::{
    Attachment, Channel, Channels, DoubtPolicy, OutMessage, Outcome, RowFacts, Sent, Step,
    next_step,
};
use crate::config::{ChannelMode, Config, Delivery};
use crate::domain::Channel as ChannelName;
use crate::domain::{EmailAddress, Kind, Recipient};
use crate::metrics::Metrics;
use crate::portal::LinkMaker;
use crate::redact::{mask, mask_text};
use crate::store::{AttemptRecord, Finished, Lease, OutboxRow, Store, StoreError, UnreadableRow};
use crate::templates::{ACCESS_CODE, Audience, Catalog, STATUS_URL, Settings, Templates};
use crate::time::Clock;
use crate::time::Timestamp;

/// Why the channels could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("[{section}] {source}")]
    Smtp {
        section: &'static str,
        source: SmtpSetupError,
    },
    #[error("file channel: {0}")]
    File(SmtpSetupError),
    /// `[smtp.dkim]`'s key cannot sign; `from` names where the key was read.
    #[error("{source}{from}")]
    Dkim {
        source: super::dkim::DkimError,
        from: String,
    },
    #[error("SMS providers: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{0}")]
    Voice(#[from] super::voice::VoiceSetupError),
    #[error("{0}")]
    Io(#[from] super::io::IoSetupError),
    #[error("bundled templates: {0}")]
    Templates(crate::templates::CatalogError),
}

/// The channels the configuration asks for: e-mail, PEC and SMS, each over its transport.
pub fn transports(config: &Config) -> Result<Channels, SetupError> {
    crate::install_crypto();
    let n = &config.notify;
    let display = format!("URP {}", config.comune_name);
    let file = || {
        FileChannel::new(
            &config.channels.file_dir,
            &n.sender_email,
            &config.comune_name,
            Some(n.office_email.as_str()),
        )
        .map(|c| Box::new(c) as Box<dyn Channel>)
        .map_err(SetupError::File)
    };
    // One signer for every channel over [smtp] (the key is parsed once). [pec] never signs.
    let signer = match config.smtp.as_ref().and_then(|a| a.dkim.as_ref()) {
        Some(d) => {
            let signer = Arc::new(dkim_signer(config, d)?);
            tracing::info!(signer = %signer.describe(), "outgoing mail over [smtp] is DKIM-signed");
            Some(signer)
        }
        None => None,
    };
    let smtp = |section: &'static str, account: &crate::config::SmtpAccount, sender: &str| {
        SmtpChannel::new(
            section,
            account.clone(),
            sender,
            &display,
            Some(n.office_email.as_str()),
            &config.delivery,
        )
        .map(|c| match (&signer, section) {
            (Some(s), "smtp") => c.with_dkim(Arc::clone(s)),
            _ => c,
        })
        .map(|c| Box::new(c) as Box<dyn Channel>)
        .map_err(|source| SetupError::Smtp { section, source })
    };
    let email = match (config.channels.email, &config.smtp) {
        (ChannelMode::Smtp, Some(a)) => {
            smtp("smtp", a, a.sender.as_deref().unwrap_or(&n.sender_email))?
        }
        _ => file()?,
    };
    let pec = match (config.channels.pec, &config.smtp, &config.pec) {
        (ChannelMode::Smtp, Some(a), _) => {
            smtp("smtp", a, a.sender.as_deref().unwrap_or(&n.sender_email))?
        }
        (ChannelMode::Pec, _, Some(a)) => {
            smtp("pec", a, a.sender.as_deref().unwrap_or(&n.sender_email))?
        }
        _ => file()?,
    };
    let sms = match config.channels.sms {
        ChannelMode::Http => Box::new(SmsChannel::new(
            &config.sms,
            &config.delivery,
            &config.http.public_base_url,
        )?) as Box<dyn Channel>,
        _ => file()?,
    };
    let channels = Channels::default()
        .with(ChannelName::Email, email)
        .with(ChannelName::Pec, pec)
        .with(ChannelName::Sms, sms);
    let channels = match &config.voice.outbound {
        Some(o) => channels.with(
            ChannelName::Voice,
            Box::new(super::voice::VoiceChannel::new(o, &config.delivery)?),
        ),
        None => channels,
    };
    Ok(match &config.io {
        Some(io) => channels.with(
            ChannelName::Io,
            Box::new(super::io::IoChannel::new(io, &config.delivery)?),
        ),
        None => channels,
    })
}

/// The DKIM signer of `[smtp.dkim]`, or why its key cannot sign (naming the file it came from
/// when it was read from one).
pub fn dkim_signer(
    config: &Config,
    d: &crate::config::Dkim,
) -> Result<super::dkim::DkimSigner, SetupError> {
    super::dkim::DkimSigner::new(d).map_err(|source| SetupError::Dkim {
        source,
        from: dkim_key_origin(config),
    })
}

/// ` (read from VAR=PATH)` when `smtp.dkim.private_key` came from a `…_FILE` variable.
pub fn dkim_key_origin(config: &Config) -> String {
    config
        .overrides
        .iter()
        .find(|(key, _)| key == "smtp.dkim.private_key")
        .map(|(_, var)| match std::env::var_os(var) {
            Some(path) if var.ends_with("_FILE") => {
                format!(" (read from {var}={})", Path::new(&path).display())
            }
            _ => format!(" (set by {var})"),
        })
        .unwrap_or_default()
}

/// What a dispatch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchReport {
    pub delivered: u64,
    /// Not delivered this time: retried, dead or held.
    pub failed: u64,
    pub dead: u64,
    pub uncertain: u64,
    /// Replacements owed by the fallback chain.
    pub fallbacks: u64,
    /// Messages sent again while an earlier attempt may have gone through.
    pub resent: u64,
    /// Not tried: no provider available.
    pub deferred: u64,
}

/// A leased batch: how many rows were leased, those ready to send, those that end without a
/// send, and what became of the rows that could not be read (already recorded).
struct Batch {
    leased: usize,
    ready: Vec<OutboxRow>,
    ended: Vec<(OutboxRow, Sent)>,
    unreadable: DispatchReport,
}

/// A lease or a write under way, polled by the drain beside the sends.
type Pending<'a, T> = Option<Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>>;

/// The output of `work` once it is done; never, while there is none.
async fn finished<T>(work: &mut Pending<'_, T>) -> Result<T, StoreError> {
    match work {
        Some(w) => w.await,
        None => std::future::pending().await,
    }
}

/// Rows in flight (leased, sending, or waiting to be written) per message the channels may
/// send at once: enough that a lease, a render and a write of results overlap the sends and
/// their round trips to the database are paid for many rows at once.
const ROWS_PER_SLOT: usize = 4;

/// Results written per transaction at most.
const FLUSH_ROWS: usize = 256;
/// How long a result waits to be written with others.
const FLUSH_EVERY: Duration = Duration::from_millis(25);

/// Messages that still go by SMS to a number that opted out: the confirmation of the opt-out
/// itself, said once.
const OPT_OUT_EXEMPT: &[Kind] = &[Kind::RevocaSms];

/// The dispatcher.
pub struct Dispatcher {
    store: Store,
    channels: Channels,
    policy: Delivery,
    office_email: EmailAddress,
    /// Replies to citizens' e-mails go to this address tagged with the ticket number.
    reply_address: Option<String>,
    sms_opening: Option<Arc<dyn Fn(Timestamp) -> Timestamp + Send + Sync>>,
    metrics: Arc<Metrics>,
    stopping: AtomicBool,
    /// The live templates; a message is rendered once, before its first attempt.
    templates: Arc<Templates>,
    /// Writes the status link of a citizen's message (none: the portal is off).
    links: Option<Arc<LinkMaker>>,
}

impl Dispatcher {
    /// The channels the configuration asks for.
    pub fn from_config(
        store: Store,
        config: &Config,
        metrics: Arc<Metrics>,
    ) -> Result<Dispatcher, SetupError> {
        let channels = transports(config)?;
        let n = &config.notify;
        Ok(Dispatcher {
            store,
            channels,
            policy: config.delivery.clone(),
            office_email: n.office_email.clone(),
            reply_address: config.inbound.reply_address.clone(),
            sms_opening: None,
            metrics,
            stopping: AtomicBool::new(false),
            templates: Arc::new(Templates::new(
                Catalog::bundled().map_err(SetupError::Templates)?,
                Settings::from_config(config),
            )),
            links: None,
        })
    }

    /// Every channel writes files into `dir` (the default, and tests).
    pub fn files(
        store: Store,
        dir: &Path,
        sender: &str,
        comune: &str,
    ) -> Result<Dispatcher, SetupError> {
        let file = || {
            FileChannel::new(dir, sender, comune, None)
                .map(|c| Box::new(c) as Box<dyn Channel>)
                .map_err(SetupError::File)
        };
        let office_email = EmailAddress::parse(sender)
            .map_err(|_| SetupError::File(SmtpSetupError::Address(sender.to_owned())))?;
        let mut channels = Channels::default();
        for name in ChannelName::ALL {
            channels = channels.with(name, file()?);
        }
        Ok(Dispatcher {
            store,
            channels,
            policy: Delivery::default(),
            office_email,
            reply_address: None,
            sms_opening: None,
            metrics: Arc::new(Metrics::default()),
            stopping: AtomicBool::new(false),
            templates: Arc::new(Templates::new(
                Catalog::bundled().map_err(SetupError::Templates)?,
                Settings {
                    comune: comune.to_owned(),
                    ..Settings::example()
                },
            )),
            links: None,
        })
    }

    /// Messages for `name` go through `through` instead (a new kind of channel, a test double).
    pub fn with_channel(mut self, name: ChannelName, through: Box<dyn Channel>) -> Dispatcher {
        self.channels = std::mem::take(&mut self.channels).with(name, through);
        self
    }

    /// When an SMS owed by the fallback chain may go (the SMS window).
    pub fn with_sms_opening(
        mut self,
        f: Arc<dyn Fn(Timestamp) -> Timestamp + Send + Sync>,
    ) -> Dispatcher {
        self.sms_opening = Some(f);
        self
    }

    /// Renders with `templates` (the daemon's live set, which the admin console updates).
    pub fn with_templates(mut self, templates: Arc<Templates>) -> Dispatcher {
        self.templates = templates;
        self
    }

    /// Citizens' messages about a ticket carry a signed link to its status page.
    pub fn with_status_links(mut self, links: Arc<LinkMaker>) -> Dispatcher {
        self.links = Some(links);
        self
    }

    /// Stops leasing; what is in flight finishes and is recorded.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    fn capacity(&self) -> usize {
        self.channels.concurrency().clamp(8, 1024) * ROWS_PER_SLOT
    }

    /// Leases under way at once: on PostgreSQL two, so that one's round trips overlap the
    /// other's (they skip each other's rows); SQLite has one writer, where a second would wait.
    fn leases_at_once(&self) -> usize {
        match self.store.backend() {
            crate::store::Backend::Postgres => 2,
            crate::store::Backend::Sqlite => 1,
        }
    }

    fn ready_channels(&self, now: Instant) -> Vec<ChannelName> {
        self.channels.ready(now)
    }

    /// Sends what is due, concurrently, until nothing is due or about `max` rows were taken.
    ///
    /// Three kinds of work overlap: the sends; the lease of the next batch (lease, render, keep
    /// the words: a row goes out only once that is committed); and the write of finished
    /// results. At most `leases_at_once` leases (two on PostgreSQL, one on SQLite) and one
    /// write are under way at a time.
    ///
    /// Long because it is one `select!` loop: its state (the lease and the write under way,
    /// the sends, the results waiting) is shared by every arm, and split it would only move
    /// into a struct that every arm borrows whole.
    pub async fn drain(
        self: &Arc<Self>,
        clock: &Clock,
        max: u64,
    ) -> Result<DispatchReport, StoreError> {
        let cap = self.capacity();
        let mut report = DispatchReport::default();
        let mut set: JoinSet<(OutboxRow, Sent)> = JoinSet::new();
        let mut done: Vec<(OutboxRow, Sent)> = Vec::new();
        // The batches being leased, how many rows each asked for and all of them together;
        // results being written.
        let mut leases: JoinSet<Result<Batch, StoreError>> = JoinSet::new();
        let mut asked: HashMap<tokio::task::Id, usize> = HashMap::new();
        let mut asking = 0;
        let mut writing: Pending<'_, DispatchReport> = None;
        let mut leased: u64 = 0;
        let mut exhausted = false;
        let mut last_flush = Instant::now();
        let mut fallbacks_seen = 0;
        loop {
            if leases.len() < self.leases_at_once()
                && !exhausted
                && set.len() + asking <= cap / 2
                && leased + (asking as u64) < max
                && !self.stopping.load(Ordering::SeqCst)
            {
                let channels = self.ready_channels(Instant::now());
                if channels.is_empty() {
                    exhausted = true;
                } else {
                    let want = (cap - set.len() - asking)
                        .min((max - leased) as usize - asking)
                        .max(1);
                    let (me, clock) = (Arc::clone(self), Arc::clone(clock));
                    let task =
                        leases.spawn(async move { me.lease_batch(&clock, want, channels).await });
                    asked.insert(task.id(), want);
                    asking += want;
                }
            }
            if writing.is_none()
                && (done.len() >= FLUSH_ROWS
                    || (!done.is_empty() && last_flush.elapsed() >= FLUSH_EVERY))
            {
                let (batch, now) = (std::mem::take(&mut done), clock());
                writing = Some(Box::pin(async move {
                    let mut written = DispatchReport::default();
                    self.flush(batch, now, &mut written).await.map(|()| written)
                }));
                last_flush = Instant::now();
            }
            if set.is_empty() && leases.is_empty() && writing.is_none() {
                // Replacements owed by the fallback chain go out in the same drain.
                self.flush(std::mem::take(&mut done), clock(), &mut report)
                    .await?;
                if report.fallbacks > fallbacks_seen
                    && leased < max
                    && !self.stopping.load(Ordering::SeqCst)
                {
                    fallbacks_seen = report.fallbacks;
                    exhausted = false;
                    continue;
                }
                break;
            }
            let flush_at = tokio::time::Instant::from_std(last_flush + FLUSH_EVERY);
            tokio::select! {
                Some(r) = leases.join_next_with_id() => {
                    let id = match &r {
                        Ok((id, _)) => *id,
                        Err(e) => e.id(),
                    };
                    let want = asked.remove(&id).unwrap_or(0);
                    asking -= want;
                    let batch = match r {
                        Ok((_, batch)) => batch?,
                        Err(e) => {
                            // A lease task panicked: what it leased comes back when the lease
                            // expires (on PostgreSQL it was undone).
                            tracing::error!(error = %e, "a lease task failed");
                            continue;
                        }
                    };
                    if batch.leased < want {
                        exhausted = true;
                    }
                    leased += batch.leased as u64;
                    report.add(&batch.unreadable);
                    done.extend(batch.ended);
                    for row in batch.ready {
                        let me = Arc::clone(self);
                        let now = clock();
                        set.spawn(async move {
                            let sent = me.send_row(&row, now).await;
                            (row, sent)
                        });
                    }
                }
                r = finished(&mut writing) => {
                    writing = None;
                    report.add(&r?);
                }
                Some(r) = set.join_next() => {
                    match r {
                        Ok(r) => done.push(r),
                        // A send task panicked: its row stays leased and comes back in doubt.
                        Err(e) => tracing::error!(error = %e, "a send task failed"),
                    }
                    while let Some(r) = set.try_join_next() {
                        match r {
                            Ok(r) => done.push(r),
                            Err(e) => tracing::error!(error = %e, "a send task failed"),
                        }
                    }
                }
                () = tokio::time::sleep_until(flush_at), if !done.is_empty() && writing.is_none() => {}
            }
        }
        Ok(report)
    }

    /// Leases up to `want` rows on `channels` and makes them ready to send: words rendered and
    /// kept. Rows that end here (no words; an SMS to a number that opted out) are in `ended`;
    /// rows that cannot be read are recorded dead at once.
    async fn lease_batch(
        &self,
        clock: &Clock,
        want: usize,
        channels: Vec<ChannelName>,
    ) -> Result<Batch, StoreError> {
        let outbox = self.store.outbox();
        let (mut lease, leased_rows) = outbox
            .begin_lease(clock(), want as i64, self.policy.lease_s, Some(&channels))
            .instrument(tracing::info_span!("lease", want))
            .await?;
        let leased = leased_rows.len();
        let rows = leased_rows.rows;
        let mut ended = Vec::new();
        let opted_out = self.opted_out(&rows).await?;
        let rows = self
            .render_rows(rows, clock(), &mut lease, &mut ended)
            .await?;
        // The rows may go out from here; the unreadable ones are ended after the lease is
        // committed (on PostgreSQL its transaction holds their locks until then).
        lease.commit().await?;
        let unreadable = self.end_unreadable(leased_rows.unreadable, clock()).await?;
        let mut ready = Vec::with_capacity(rows.len());
        for row in rows {
            if row.channel == ChannelName::Sms
                && opted_out.iter().any(|n| n == row.address.as_str())
                && !OPT_OUT_EXEMPT.contains(&row.kind)
            {
                // No request goes out: the row dies at once and the fallback chain serves the
                // citizen on another channel.
                let sent = Sent::one(
                    "opt-out",
                    Outcome::permanent(
                        "the citizen turned SMS off (opt-out keyword); served on another channel",
                    ),
                    Instant::now(),
                    chrono::Utc::now().timestamp_millis(),
                );
                ended.push((row, sent));
                continue;
            }
            ready.push(row);
        }
        Ok(Batch {
            leased,
            ready,
            ended,
            unreadable,
        })
    }

    /// The SMS numbers among `rows` that asked for no more SMS.
    async fn opted_out(&self, rows: &[OutboxRow]) -> Result<Vec<String>, StoreError> {
        let numbers: Vec<&str> = rows
            .iter()
            .filter(|r| r.channel == ChannelName::Sms)
            .map(|r| r.address.as_str())
            .collect();
        if numbers.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.store.inbound().opted_out(&numbers).await?)
    }

    /// Renders the rows that have no words yet and keeps the words in the store (with the
    /// lease) before any attempt, so every attempt (and a restart) sends the same text whatever is published
    /// meanwhile. A row that cannot be rendered dies (it is listed in `done`).
    async fn render_rows(
        &self,
        rows: Vec<OutboxRow>,
        now: Timestamp,
        lease: &mut Lease<'_>,
        done: &mut Vec<(OutboxRow, Sent)>,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let mut fresh = Vec::new();
        let mut out = Vec::with_capacity(rows.len());
        for mut row in rows {
            if row.rendered.is_none() {
                let audience = row.recipient.audience();
                // A citizen's message about a ticket carries a fresh link to its status page.
                let link = self
                    .links
                    .as_ref()
                    .filter(|_| audience == Audience::Cittadino && row.ticket_id > 0)
                    .map(|m| m.url(row.ticket_id, now));
                // The receipt also carries the ticket's access code (for the phone and the SMS
                // answering), only when the portal — whose keys make the codes — is on.
                let code = match (&self.links, link.is_some() && row.kind == Kind::Ricevuta) {
                    (Some(m), true) => Some(
                        m.keys.access_code(
                            row.ticket_id,
                            self.store
                                .portal()
                                .portal_ticket_by_id(row.ticket_id)
                                .await?
                                .and_then(|t| t.links_revoked_at),
                        ),
                    ),
                    _ => None,
                };
                let payload = match link {
                    Some(url) => {
                        let mut p = row.payload.clone();
                        if let Some(m) = p.as_object_mut() {
                            m.insert(STATUS_URL.to_owned(), serde_json::Value::String(url));
                            if let Some(code) = code {
                                m.insert(ACCESS_CODE.to_owned(), serde_json::Value::String(code));
                            }
                        }
                        std::borrow::Cow::Owned(p)
                    }
                    None => std::borrow::Cow::Borrowed(&row.payload),
                };
                match self.templates.render_message(
                    audience,
                    row.kind,
                    row.language,
                    row.channel,
                    &payload,
                ) {
                    Ok(r) => {
                        fresh.push((row.id, r.clone()));
                        row.rendered = Some(r);
                    }
                    Err(e) => {
                        tracing::error!(outbox_id = row.id, error = %e, "a message cannot be rendered");
                        let sent = Sent::one(
                            "template",
                            Outcome::permanent(format!("rendering failed: {e}")),
                            Instant::now(),
                            chrono::Utc::now().timestamp_millis(),
                        );
                        done.push((row, sent));
                        continue;
                    }
                }
            }
            out.push(row);
        }
        if !fresh.is_empty() {
            lease.save_rendered(&fresh).await?;
        }
        Ok(out)
    }

    #[tracing::instrument(
        name = "send",
        level = "debug",
        skip_all,
        fields(outbox_id = row.id, channel = %row.channel, kind = %row.kind, to = %mask(row.address.as_str()), in_doubt = row.in_doubt)
    )]
    async fn send_row(&self, row: &OutboxRow, now: Timestamp) -> Sent {
        let started = Instant::now();
        let started_ms = chrono::Utc::now().timestamp_millis();
        let Some(t) = self.channels.get(row.channel) else {
            return Sent::one(
                "none",
                Outcome::permanent(format!("no channel {} is configured", row.channel)),
                started,
                started_ms,
            );
        };
        if row.channel == ChannelName::Voice
            && let Some(f) = &self.sms_opening
            && f(now) > now
        {
            // Outside the SMS window: not tried, back to the queue until it opens.
            return Sent {
                attempts: Vec::new(),
                resent: false,
            };
        }
        if row.in_doubt && !t.checks_in_doubt() && t.doubt_policy() == DoubtPolicy::Hold {
            return Sent::one(
                t.name(),
                Outcome::Uncertain {
                    reason: "an earlier attempt may have been sent; resending is off (smtp.resend_uncertain)".to_owned(),
                },
                started,
                started_ms,
            );
        }
        let Some(rendered) = &row.rendered else {
            return Sent::one(
                "template",
                Outcome::permanent("the message was never rendered"),
                started,
                started_ms,
            );
        };
        let number = row.payload["number"].as_str().unwrap_or("");
        let reply_to = match (&self.reply_address, row.recipient) {
            (Some(base), Recipient::Citizen) if !number.is_empty() => {
                OutMessage::tagged_reply(base, number)
            }
            _ => None,
        };
        let msg = OutMessage {
            language: row.language,
            outbox_id: row.id,
            ticket_id: row.ticket_id,
            number: row.payload["number"].as_str().unwrap_or("").to_owned(),
            kind: row.kind,
            recipient: row.recipient,
            channel: row.channel,
            address: row.address.clone(),
            subject: rendered.subject.clone(),
            text: rendered.text.clone(),
            html: rendered.html.clone(),
            reply_to,
            due_date: row.payload["reply_by"]
                .as_str()
                .and_then(|t| crate::time::Timestamp::parse_rfc3339(t).ok()),
            attachments: match attachments(rendered) {
                Ok(files) => files,
                Err(error) => {
                    return Sent::one("template", Outcome::permanent(error), started, started_ms);
                }
            },
        };
        let sent = t.send(&msg, row.in_doubt).await;
        self.metrics.observe_send(row.channel, started.elapsed());
        sent
    }

    fn step_of(&self, row: &OutboxRow, sent: &Sent, now: Timestamp) -> Step {
        let doubt = self
            .channels
            .get(row.channel)
            .map_or(DoubtPolicy::Hold, |c| c.doubt_policy());
        let step = next_step(
            RowFacts {
                attempts: row.attempts,
                created_at: row.created_at,
            },
            sent,
            &self.policy.retry(),
            doubt,
            now,
            getrandom::u64().unwrap_or(0),
        );
        // A call is placed only inside the SMS window: a retry falling outside it waits for
        // the window to open.
        match (row.channel, step, &self.sms_opening) {
            (
                ChannelName::Voice,
                Step::Retry {
                    at,
                    error,
                    in_doubt,
                },
                Some(f),
            ) => Step::Retry {
                at: f(at),
                error,
                in_doubt,
            },
            (ChannelName::Voice, Step::Deferred { at }, Some(f)) => Step::Deferred { at: f(at) },
            (_, step, _) => step,
        }
    }

    #[tracing::instrument(name = "finish", skip_all, fields(rows = done.len()))]
    async fn flush(
        &self,
        done: Vec<(OutboxRow, Sent)>,
        now: Timestamp,
        report: &mut DispatchReport,
    ) -> Result<(), StoreError> {
        if done.is_empty() {
            return Ok(());
        }
        let steps: Vec<Step> = done.iter().map(|(r, s)| self.step_of(r, s, now)).collect();
        let needs_citizen: Vec<i64> = done
            .iter()
            .zip(&steps)
            .filter(|((r, _), s)| {
                r.recipient == Recipient::Citizen
                    && matches!(s, Step::Dead { .. } | Step::Uncertain { .. })
            })
            .map(|((r, _), _)| r.ticket_id)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let citizens = if needs_citizen.is_empty() {
            Default::default()
        } else {
            self.store.outbox().citizens(&needs_citizen).await?
        };
        let finished: Vec<Finished> = done
            .iter()
            .zip(steps)
            .map(|((row, sent), step)| self.result_of(row, sent, step, &citizens, now, report))
            .collect();
        self.store.outbox().finish(now, &finished).await?;
        self.count(&finished);
        Ok(())
    }

    /// What is written for `row`, sent as `sent`, whose next step is `step`; counted in
    /// `report` and logged (masked).
    fn result_of(
        &self,
        row: &OutboxRow,
        sent: &Sent,
        step: Step,
        citizens: &std::collections::HashMap<i64, crate::ticket::Citizen>,
        now: Timestamp,
        report: &mut DispatchReport,
    ) -> Finished {
        let mut f = blank_result(row, sent);
        let masked = mask(row.address.as_str());
        match step {
            Step::Delivered {
                provider,
                provider_id,
            } => {
                f.state = "delivered";
                f.delivered_at = Some(now);
                f.in_doubt = false;
                tracing::debug!(outbox_id = row.id, kind = %row.kind, to = %masked, provider = %provider, "delivered");
                f.provider = Some(provider);
                f.provider_id = provider_id;
                report.delivered += 1;
            }
            Step::Retry {
                at,
                error,
                in_doubt,
            } => {
                f.not_before = Some(at);
                f.in_doubt = row.in_doubt || in_doubt;
                tracing::info!(outbox_id = row.id, kind = %row.kind, to = %masked, attempt = row.attempts, retry_at = at.0, error = %mask_text(&error), "will retry");
                f.error = Some(error);
                report.failed += 1;
            }
            Step::Deferred { at } => {
                f.not_before = Some(at);
                f.refund = true;
                report.deferred += 1;
            }
            Step::Dead { error } => {
                f.state = "dead";
                report.dead += 1;
                report.failed += 1;
                f.replacement = self.replacement_for(row, &error, citizens, false, now);
                tracing::warn!(outbox_id = row.id, kind = %row.kind, to = %masked, error = %mask_text(&error), fallback = f.replacement.as_ref().map(|r| r.channel.as_str()), "dead");
                f.error = Some(error);
            }
            Step::Uncertain { error } => {
                f.state = "uncertain";
                f.in_doubt = true;
                report.uncertain += 1;
                report.failed += 1;
                f.replacement = self.replacement_for(row, &error, citizens, true, now);
                tracing::warn!(outbox_id = row.id, kind = %row.kind, to = %masked, error = %mask_text(&error), "outcome unknown: held for the office");
                f.error = Some(error);
            }
        }
        if f.replacement.is_some() {
            report.fallbacks += 1;
        }
        if f.resent {
            report.resent += 1;
        }
        f
    }

    /// Counts written results in the metrics.
    fn count(&self, finished: &[Finished]) {
        let m = &self.metrics;
        m.delivered_total
            .inc_by(report_delta(finished, "delivered"));
        m.failed_total.inc_by(
            finished
                .iter()
                .filter(|f| f.state != "delivered" && !f.refund)
                .count() as u64,
        );
        m.dead_total.inc_by(report_delta(finished, "dead"));
        m.uncertain_total
            .inc_by(report_delta(finished, "uncertain"));
        m.resent_total
            .inc_by(finished.iter().filter(|f| f.resent).count() as u64);
        m.fallback_total
            .inc_by(finished.iter().filter(|f| f.replacement.is_some()).count() as u64);
        m.attempts_total
            .inc_by(finished.iter().map(|f| f.attempts.len() as u64).sum());
    }

    fn replacement_for(
        &self,
        row: &OutboxRow,
        error: &str,
        citizens: &std::collections::HashMap<i64, crate::ticket::Citizen>,
        held: bool,
        now: Timestamp,
    ) -> Option<crate::store::NewOutbox> {
        if row.recipient != Recipient::Citizen {
            return None;
        }
        self.replace(&row.dead(), error, citizens, held, now)
    }

    /// What the fallback chain owes for `dead`, which failed with `error`.
    fn replace(
        &self,
        dead: &DeadRow,
        error: &str,
        citizens: &std::collections::HashMap<i64, crate::ticket::Citizen>,
        held: bool,
        now: Timestamp,
    ) -> Option<crate::store::NewOutbox> {
        let citizen = citizens.get(&dead.ticket_id)?;
        let mut r = replacement(
            dead,
            error,
            citizen,
            &self.policy.fallback,
            &self.office_email,
            held,
            now,
        )?;
        if matches!(
            r.channel,
            ChannelName::Sms | ChannelName::Voice | ChannelName::Io
        ) && let Some(f) = &self.sms_opening
        {
            r.not_before = f(now);
        }
        Some(r)
    }

    /// Ends rows with a stored value this version cannot read: each is dead with what does not
    /// parse as its error, like a message refused for good, and when the rest of the row was
    /// readable (only its address was not) the fallback chain serves the citizen as it would
    /// after a channel refused the address. Recorded at once (they are rare).
    async fn end_unreadable(
        &self,
        rows: Vec<UnreadableRow>,
        now: Timestamp,
    ) -> Result<DispatchReport, StoreError> {
        let mut report = DispatchReport::default();
        if rows.is_empty() {
            return Ok(report);
        }
        let tickets: Vec<i64> = rows
            .iter()
            .filter_map(|r| r.dead.as_ref())
            .filter(|d| d.recipient == Recipient::Citizen)
            .map(|d| d.ticket_id)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let citizens = if tickets.is_empty() {
            Default::default()
        } else {
            self.store.outbox().citizens(&tickets).await?
        };
        let started_ms = chrono::Utc::now().timestamp_millis();
        let mut finished = Vec::with_capacity(rows.len());
        for r in rows {
            let error = format!("outbox: {}", r.error);
            let replacement = r
                .dead
                .as_ref()
                .and_then(|d| self.replace(d, &error, &citizens, false, now));
            tracing::error!(outbox_id = r.id, error = %error, fallback = replacement.as_ref().map(|n| n.channel.as_str()), "a message this version cannot read: dead");
            report.dead += 1;
            report.failed += 1;
            if replacement.is_some() {
                report.fallbacks += 1;
            }
            finished.push(Finished {
                id: r.id,
                lease_token: r.lease_token,
                attempt: r.attempt,
                channel: r.channel,
                attempts: vec![AttemptRecord {
                    provider: "outbox".to_owned(),
                    outcome: "permanent",
                    code: None,
                    provider_id: None,
                    error: Some(r.error),
                    started_at_ms: started_ms,
                    latency_ms: 0,
                }],
                state: "dead",
                not_before: None,
                error: Some(error),
                provider: None,
                provider_id: None,
                in_doubt: r.in_doubt,
                resent: false,
                refund: false,
                delivered_at: None,
                replacement,
            });
        }
        self.store.outbox().finish(now, &finished).await?;
        let m = &self.metrics;
        m.failed_total.inc_by(report.failed);
        m.dead_total.inc_by(report.dead);
        m.fallback_total.inc_by(report.fallbacks);
        m.attempts_total.inc_by(finished.len() as u64);
        Ok(report)
    }
}

/// What a PEC receipt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptOutcome {
    /// Recorded; `failed` says it ended the message (dead, fallback owed).
    Recorded {
        outbox_id: i64,
        kind: &'static str,
        failed: bool,
        fallback: Option<ChannelName>,
    },
    /// The same receipt came before: nothing changed.
    Duplicate { outbox_id: i64 },
    /// Not a receipt for a message of ours: ignored.
    Ignored(String),
}

/// Records one PEC receipt (the raw message as the PEC mailbox received it). A failure
/// receipt makes the message dead and owes its replacement by the fallback chain.
pub async fn apply_pec_receipt(
    store: &Store,
    config: &Config,
    raw: &str,
    now: Timestamp,
) -> Result<ReceiptOutcome, StoreError> {
    let r = match super::pec::parse_receipt(raw) {
        Ok(r) => r,
        Err(e) => return Ok(ReceiptOutcome::Ignored(e.to_string())),
    };
    let Some((row, _state)) = store.outbox().outbox_row(r.outbox_id).await? else {
        return Ok(ReceiptOutcome::Ignored(format!(
            "no message {} in this store",
            r.outbox_id
        )));
    };
    // A row this version cannot read is still ended by its failure, without a replacement
    // unless only its address was unreadable.
    let (ticket_id, dead) = match row {
        Ok(row) => (row.ticket_id, Some(row.dead())),
        Err(u) => (u.ticket_id, u.dead),
    };
    if ticket_id != r.ticket_id {
        return Ok(ReceiptOutcome::Ignored(format!(
            "message {} belongs to another ticket",
            r.outbox_id
        )));
    }
    let failure = r.kind.failure();
    let error = failure
        .as_ref()
        .and_then(|o| o.reason().map(|x| format!("{x} ({})", r.subject)));
    let replacement = match (&error, dead) {
        (Some(e), Some(dead)) if dead.recipient == Recipient::Citizen => {
            let citizens = store.outbox().citizens(&[dead.ticket_id]).await?;
            citizens.get(&dead.ticket_id).and_then(|c| {
                replacement(
                    &dead,
                    e,
                    c,
                    &config.delivery.fallback,
                    &config.notify.office_email,
                    false,
                    now,
                )
            })
        }
        _ => None,
    };
    let new = store
        .outbox()
        .record_receipt(
            &crate::store::Receipt {
                outbox_id: r.outbox_id,
                source: "pec",
                kind: r.kind.as_str(),
                final_state: r.kind.final_state(),
                detail: &r.subject,
            },
            error.as_deref().map(|e| (e, replacement.as_ref())),
            now,
        )
        .await?;
    if !new {
        return Ok(ReceiptOutcome::Duplicate {
            outbox_id: r.outbox_id,
        });
    }
    if let Some(e) = &error {
        tracing::warn!(outbox_id = r.outbox_id, receipt = r.kind.as_str(), error = %mask_text(e), "PEC not delivered");
    }
    Ok(ReceiptOutcome::Recorded {
        outbox_id: r.outbox_id,
        kind: r.kind.as_str(),
        failed: error.is_some(),
        fallback: replacement.map(|x| x.channel),
    })
}

impl DispatchReport {
    fn add(&mut self, o: &DispatchReport) {
        self.delivered += o.delivered;
        self.failed += o.failed;
        self.dead += o.dead;
        self.uncertain += o.uncertain;
        self.fallbacks += o.fallbacks;
        self.resent += o.resent;
        self.deferred += o.deferred;
    }
}

/// The result of `row`, sent as `sent`, before its next step is known: every attempt, and the
/// row still to retry.
fn blank_result(row: &OutboxRow, sent: &Sent) -> Finished {
    let attempts = sent
        .attempts
        .iter()
        .map(|a| AttemptRecord {
            provider: a.provider.clone(),
            outcome: a.outcome.label(),
            code: a.outcome.code().map(str::to_owned),
            provider_id: match &a.outcome {
                Outcome::Delivered { provider_id, .. } => provider_id.clone(),
                _ => None,
            },
            error: a.outcome.reason().map(str::to_owned),
            started_at_ms: a.started_at_ms,
            latency_ms: a.latency_ms,
        })
        .collect();
    Finished {
        id: row.id,
        lease_token: row.lease_token,
        attempt: row.attempts,
        channel: row.channel.as_str().to_owned(),
        attempts,
        state: "retry",
        not_before: None,
        error: None,
        provider: None,
        provider_id: None,
        in_doubt: row.in_doubt,
        resent: sent.resent,
        refund: false,
        delivered_at: None,
        replacement: None,
    }
}

fn report_delta(finished: &[Finished], state: &str) -> u64 {
    finished.iter().filter(|f| f.state == state).count() as u64
}

/// The files kept with a message's words, or why they cannot be read (the row then dies: its
/// words never change, so no retry would help).
fn attachments(rendered: &crate::templates::RenderedMessage) -> Result<Vec<Attachment>, String> {
    rendered
        .attachments
        .iter()
        .map(|a| {
            a.decode()
                .ok_or_else(|| format!("the attachment {:?} is not valid base64", a.name))
        })
        .collect()
}
