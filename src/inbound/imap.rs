//! Polling an IMAP mailbox for citizens' e-mail replies.
//!
//! [`poll_once`] logs in, looks for unseen messages and hands each one, as raw bytes, to a
//! callback that stores it durably. A message is flagged `\Seen` (and moved, when a folder for
//! processed mail is configured) only after the callback succeeded, so a crash or a store
//! failure never loses a reply: at worst the same message is offered again on the next poll,
//! and the callback must treat a repeat (same Message-ID, same bytes) as already stored.
//!
//! Every network step runs under the account's timeout. Logs carry UIDs and counts only, never
//! addresses, subjects or message content.

use std::collections::{BTreeSet, HashMap};
use std::fmt::{Debug, Display};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_imap::error::Error as ProtoError;
use async_imap::imap_proto::{Response, Status};
use async_imap::types::Fetch;
use async_imap::{Client, Session};
use futures_util::TryStreamExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub use crate::config::{ImapAccount, ImapSecurity};

/// What one poll did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PollReport {
    /// Messages downloaded and offered to the callback.
    pub fetched: usize,
    /// Messages the callback stored; they are now `\Seen` (or moved).
    pub accepted: usize,
    /// Messages over the size limit, left unseen and not downloaded.
    pub too_large: usize,
    /// Messages the callback refused; they stay unseen for the next poll.
    pub failed: usize,
}

/// Why a poll stopped. The texts never contain the password or message content.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("cannot connect to IMAP server {host}:{port}: {reason}")]
    Connect {
        host: String,
        port: u16,
        reason: String,
    },
    #[error("TLS with IMAP server {host}: {reason}")]
    Tls { host: String, reason: String },
    #[error("IMAP login as {username:?} failed: {reason}")]
    Login { username: String, reason: String },
    #[error("IMAP {step} failed: {reason}")]
    Protocol { step: &'static str, reason: String },
    #[error("IMAP {step}: no answer within {seconds} s")]
    Timeout { step: &'static str, seconds: u64 },
}

/// Polls `account` once: every unseen message in its mailbox, oldest UID first, is downloaded
/// (without setting `\Seen`) and passed to `accept` with its UID. When `accept` returns `Ok`
/// the message is flagged `\Seen` and, with a `processed_mailbox`, moved there. When it returns
/// `Err` the message stays unseen and the round stops: the store is unavailable, and the next
/// poll starts again from that message.
///
/// Messages over `max_message_bytes` are left unseen without being downloaded and counted in
/// [`PollReport::too_large`] on every poll, until someone deals with them by hand.
///
/// An `Err` from this function after `accept` succeeded (the server dropped the connection
/// before the flag was set) means that message will be offered again.
pub async fn poll_once<F, Fut, E>(account: &ImapAccount, accept: F) -> Result<PollReport, ImapError>
where
    F: FnMut(u32, Vec<u8>) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let limit = Limits::of(account);
    let tcp = limit
        .run(
            "connect",
            TcpStream::connect((account.host.as_str(), account.port)),
        )
        .await?
        .map_err(|e| ImapError::Connect {
            host: account.host.clone(),
            port: account.port,
            reason: e.to_string(),
        })?;
    // Commands are short and answered one at a time: do not let Nagle delay them.
    let _ = tcp.set_nodelay(true);

    match account.security {
        ImapSecurity::Plain => {
            let mut client = Client::new(tcp);
            read_greeting(&mut client, limit).await?;
            run_session(client, account, limit, accept).await
        }
        ImapSecurity::Tls => {
            let tls = start_tls(tcp, account, limit).await?;
            let mut client = Client::new(tls);
            read_greeting(&mut client, limit).await?;
            run_session(client, account, limit, accept).await
        }
        ImapSecurity::StartTls => {
            let mut client = Client::new(tcp);
            read_greeting(&mut client, limit).await?;
            limit
                .run(
                    "STARTTLS",
                    client.run_command_and_check_ok("STARTTLS", None),
                )
                .await?
                .map_err(|e| ImapError::Tls {
                    host: account.host.clone(),
                    reason: format!("the server refused STARTTLS: {}", describe(&e, None)),
                })?;
            // Anything the server sent after its STARTTLS answer is dropped with the client's
            // buffer, as RFC 3501 requires (no plain-text injection into the TLS session).
            let tls = start_tls(client.into_inner(), account, limit).await?;
            // No greeting after STARTTLS: the session goes on within the TLS layer.
            run_session(Client::new(tls), account, limit, accept).await
        }
    }
}

/// The timeout applied to each network step.
#[derive(Debug, Clone, Copy)]
struct Limits {
    seconds: u64,
}

impl Limits {
    fn of(account: &ImapAccount) -> Limits {
        Limits {
            seconds: account.timeout_s.max(1),
        }
    }

    async fn run<T>(
        self,
        step: &'static str,
        fut: impl Future<Output = T>,
    ) -> Result<T, ImapError> {
        tokio::time::timeout(Duration::from_secs(self.seconds), fut)
            .await
            .map_err(|_| ImapError::Timeout {
                step,
                seconds: self.seconds,
            })
    }

    /// Runs one IMAP command: a timeout or a protocol error both become an [`ImapError`].
    async fn imap<T>(
        self,
        step: &'static str,
        fut: impl Future<Output = Result<T, ProtoError>>,
    ) -> Result<T, ImapError> {
        self.run(step, fut).await?.map_err(|e| ImapError::Protocol {
            step,
            reason: describe(&e, None),
        })
    }
}

/// An error of the IMAP library in words that carry no message data: parse errors of the
/// library include the bytes they could not read, which may be part of a message.
fn describe(e: &ProtoError, password: Option<&str>) -> String {
    let text = match e {
        ProtoError::Io(io) => format!("connection error: {io}"),
        ProtoError::Bad(s) => format!("the server answered BAD: {}", server_text(s)),
        ProtoError::No(s) => format!("the server answered NO: {}", server_text(s)),
        ProtoError::ConnectionLost => "the server closed the connection".to_owned(),
        ProtoError::Parse(_) => "the server's answer could not be read".to_owned(),
        ProtoError::Validate(_) => {
            "a command argument contains a character IMAP cannot carry (CR or LF)".to_owned()
        }
        ProtoError::Append => "the server refused the message".to_owned(),
        _ => "unexpected IMAP client error".to_owned(),
    };
    match password {
        Some(p) if !p.is_empty() && text.contains(p) => text.replace(p, "***"),
        _ => text,
    }
}

/// A server's free text, cut short and without control characters.
fn server_text(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    cleaned.trim().to_owned()
}

/// The TLS client: the system's roots plus the account's CA bundle, ring as the only provider.
fn tls_connector(account: &ImapAccount) -> Result<TlsConnector, ImapError> {
    let tls_error = |reason: String| ImapError::Tls {
        host: account.host.clone(),
        reason,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A system root rustls cannot use is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    if let Some(path) = &account.ca_bundle {
        let added = add_pem_roots(&mut roots, path).map_err(tls_error)?;
        if added == 0 {
            return Err(tls_error(format!(
                "no certificate found in CA bundle {}",
                path.display()
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Adds every certificate of a PEM file to `roots`; returns how many.
fn add_pem_roots(roots: &mut rustls::RootCertStore, path: &Path) -> Result<usize, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("CA bundle {}: {e}", path.display()))?;
    let mut added = 0;
    for cert in certs {
        let cert = cert.map_err(|e| format!("CA bundle {}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("CA bundle {}: {e}", path.display()))?;
        added += 1;
    }
    Ok(added)
}

/// The TLS handshake over `tcp`, checking the certificate against the account's host name.
async fn start_tls(
    tcp: TcpStream,
    account: &ImapAccount,
    limit: Limits,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ImapError> {
    let connector = tls_connector(account)?;
    let name = ServerName::try_from(account.host.clone()).map_err(|e| ImapError::Tls {
        host: account.host.clone(),
        reason: format!("not a valid server name: {e}"),
    })?;
    limit
        .run("TLS handshake", connector.connect(name, tcp))
        .await?
        .map_err(|e| ImapError::Tls {
            host: account.host.clone(),
            reason: e.to_string(),
        })
}

/// The server's first line: `* OK` (or `* PREAUTH`) lets us go on, anything else stops.
async fn read_greeting<T>(client: &mut Client<T>, limit: Limits) -> Result<(), ImapError>
where
    T: AsyncRead + AsyncWrite + Unpin + Debug + Send,
{
    let greeting = limit
        .run("greeting", client.read_response())
        .await?
        .map_err(|e| ImapError::Protocol {
            step: "greeting",
            reason: format!("connection error: {e}"),
        })?;
    let Some(greeting) = greeting else {
        return Err(ImapError::Protocol {
            step: "greeting",
            reason: "the server closed the connection".to_owned(),
        });
    };
    match greeting.parsed() {
        Response::Data {
            status: Status::Ok | Status::PreAuth,
            ..
        } => Ok(()),
        Response::Data {
            status: Status::Bye,
            outcome,
            ..
        } => Err(ImapError::Protocol {
            step: "greeting",
            reason: format!(
                "the server refused the connection: {}",
                server_text(outcome.information.as_deref().unwrap_or_default())
            ),
        }),
        _ => Err(ImapError::Protocol {
            step: "greeting",
            reason: "unexpected greeting from the server".to_owned(),
        }),
    }
}

/// Logs in, does the round, and logs out whatever happened in between.
async fn run_session<T, F, Fut, E>(
    client: Client<T>,
    account: &ImapAccount,
    limit: Limits,
    accept: F,
) -> Result<PollReport, ImapError>
where
    T: AsyncRead + AsyncWrite + Unpin + Debug + Send,
    F: FnMut(u32, Vec<u8>) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let (mut session, capabilities) = limit
        .run(
            "login",
            client.login_with_capabilities(&account.username, &account.password),
        )
        .await?
        .map_err(|(e, _client)| ImapError::Login {
            username: account.username.clone(),
            reason: describe(&e, Some(&account.password)),
        })?;
    let capabilities = match capabilities {
        Some(c) => c,
        None => limit.imap("CAPABILITY", session.capabilities()).await?,
    };
    let server = ServerFeatures {
        has_move: capabilities.has_str("MOVE"),
        has_uidplus: capabilities.has_str("UIDPLUS"),
    };

    let result = poll_mailbox(&mut session, account, limit, server, accept).await;
    // A failed logout changes nothing for the messages: the round's result stands.
    if let Err(e) = limit.imap("LOGOUT", session.logout()).await {
        tracing::debug!(error = %e, "IMAP logout failed");
    }
    result
}

/// What the server can do beyond IMAP4rev1.
#[derive(Debug, Clone, Copy)]
struct ServerFeatures {
    /// RFC 6851 `UID MOVE`.
    has_move: bool,
    /// RFC 4315 `UID EXPUNGE`, which expunges only the messages named.
    has_uidplus: bool,
}

/// The round itself, once logged in.
async fn poll_mailbox<T, F, Fut, E>(
    session: &mut Session<T>,
    account: &ImapAccount,
    limit: Limits,
    server: ServerFeatures,
    mut accept: F,
) -> Result<PollReport, ImapError>
where
    T: AsyncRead + AsyncWrite + Unpin + Debug + Send,
    F: FnMut(u32, Vec<u8>) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let mut report = PollReport::default();
    let uids = unseen(session, account, limit).await?;
    if uids.is_empty() {
        tracing::debug!("IMAP poll: no unseen messages");
        return Ok(report);
    }
    // The sizes of all of them in one command, so large ones are never downloaded.
    let sizes = sizes(session, &uids, limit).await?;
    let mut destination_ready = false;
    for uid in uids {
        let raw = match download(session, uid, sizes.get(&uid).copied(), account, limit).await? {
            Download::Gone => continue,
            Download::TooLarge => {
                report.too_large += 1;
                continue;
            }
            Download::Whole(raw) => raw,
        };
        report.fetched += 1;
        let bytes = raw.len();
        if let Err(reason) = accept(uid, raw).await {
            report.failed += 1;
            tracing::warn!(
                uid,
                reason = %server_text(&reason.to_string()),
                "IMAP message not stored; left unseen, the round stops until the next poll"
            );
            break;
        }
        mark_processed(session, uid, account, limit, server, &mut destination_ready)
            .await
            .inspect_err(|e| {
                tracing::warn!(
                    uid,
                    error = %e,
                    "IMAP message stored, but flagging or moving it failed \
                     (offered again only if it is still unseen)"
                );
            })?;
        report.accepted += 1;
        tracing::debug!(uid, bytes, "IMAP message stored");
    }
    log_report(&report, account);
    Ok(report)
}

/// Selects the account's mailbox; the UIDs of its unseen messages, oldest first.
async fn unseen<T>(
    session: &mut Session<T>,
    account: &ImapAccount,
    limit: Limits,
) -> Result<Vec<u32>, ImapError>
where
    T: AsyncRead + AsyncWrite + Unpin + Debug + Send,
{
    limit
        .imap("SELECT", session.select(account.mailbox.as_str()))
        .await?;
    let unseen: BTreeSet<u32> = limit
        .imap("UID SEARCH", session.uid_search("UNSEEN"))
        .await?
        .into_iter()
        .collect();
    Ok(unseen.into_iter().collect())
}

/// The size the server gives for each of `uids` (a message gone meanwhile is missing).
async fn sizes<T>(
    session: &mut Session<T>,
    uids: &[u32],
    limit: Limits,
) -> Result<HashMap<u32, u32>, ImapError>
where
    T: AsyncRead + AsyncWrite + Unpin + Debug + Send,
{
    Ok(limit
        .imap(
            "UID FETCH (RFC822.SIZE)",
            collect_fetches(session, sequence_set(uids), "(UID RFC822.SIZE)"),
        )
        .await?
        .iter()
        .filter_map(|f| Some((f.uid?, f.size?)))
        .collect())
}

/// What became of one unseen message when it was to be downloaded.
enum Download {
    /// Expunged by someone else meanwhile: skipped.
    Gone,
    /// Over the size limit: left unseen, not downloaded (or not kept).
    TooLarge,
    Whole(Vec<u8>),
}

/// Downloads message `uid` (announced at `size`) without setting `\Seen`, unless it is over
/// the account's size limit, by the size announced or by the bytes sent.
async fn download<T>(
    session: &mut Session<T>,
    uid: u32,
    size: Option<u32>,
    account: &ImapAccount,
    limit: Limits,
) -> Result<Download, ImapError>
where
    T: AsyncRead + AsyncWrite + Unpin + Debug + Send,
{
    let Some(size) = size else {
        tracing::debug!(uid, "IMAP message gone before its size was read; skipped");
        return Ok(Download::Gone);
    };
    if u64::from(size) > account.max_message_bytes {
        return Ok(Download::TooLarge);
    }
    let fetches = limit
        .imap(
            "UID FETCH (BODY.PEEK[])",
            collect_fetches(session, uid.to_string(), "(UID BODY.PEEK[])"),
        )
        .await?;
    let Some(raw) = fetches
        .iter()
        .find(|f| f.uid == Some(uid))
        .and_then(|f| f.body())
        .map(<[u8]>::to_vec)
    else {
        tracing::debug!(uid, "IMAP message gone before it was downloaded; skipped");
        return Ok(Download::Gone);
    };
    if raw.len() as u64 > account.max_message_bytes {
        // The server announced a smaller size than it sent.
        return Ok(Download::TooLarge);
    }
    Ok(Download::Whole(raw))
}

/// The round's counts in the log; messages over the size limit as a warning, each time.
fn log_report(report: &PollReport, account: &ImapAccount) {
    if report.too_large > 0 {
        tracing::warn!(
            count = report.too_large,
            max_bytes = account.max_message_bytes,
            "IMAP messages over the size limit left unseen; they need handling by hand"
        );
    }
    tracing::info!(
        fetched = report.fetched,
        accepted = report.accepted,
        too_large = report.too_large,
        failed = report.failed,
        "IMAP poll done"
    );
}

/// Runs a `UID FETCH` and reads all of its answers.
async fn collect_fetches<T>(
    session: &mut Session<T>,
    uid_set: String,
    query: &str,
) -> Result<Vec<Fetch>, ProtoError>
where
    T: AsyncRead + AsyncWrite + Unpin + Debug + Send,
{
    session.uid_fetch(uid_set, query).await?.try_collect().await
}

/// Flags `uid` as seen, then moves it to the processed folder when there is one (creating the
/// folder first unless `destination_ready`). The flag comes first: if the folder cannot be
/// created or the move fails, the stored message is still not offered again.
async fn mark_processed<T>(
    session: &mut Session<T>,
    uid: u32,
    account: &ImapAccount,
    limit: Limits,
    server: ServerFeatures,
    destination_ready: &mut bool,
) -> Result<(), ImapError>
where
    T: AsyncRead + AsyncWrite + Unpin + Debug + Send,
{
    let set = uid.to_string();
    limit
        .imap("UID STORE \\Seen", async {
            let updates: Vec<Fetch> = session
                .uid_store(&set, "+FLAGS.SILENT (\\Seen)")
                .await?
                .try_collect()
                .await?;
            drop(updates);
            Ok(())
        })
        .await?;
    let Some(dest) = &account.processed_mailbox else {
        return Ok(());
    };
    if !*destination_ready {
        ensure_mailbox(session, dest, limit).await?;
        *destination_ready = true;
    }
    if server.has_move {
        return limit
            .imap("UID MOVE", session.uid_mv(&set, dest.as_str()))
            .await;
    }
    // RFC 6851's fallback: copy, mark the original deleted, expunge it.
    limit
        .imap("UID COPY", session.uid_copy(&set, dest.as_str()))
        .await?;
    limit
        .imap("UID STORE \\Deleted", async {
            let updates: Vec<Fetch> = session
                .uid_store(&set, "+FLAGS.SILENT (\\Deleted)")
                .await?
                .try_collect()
                .await?;
            drop(updates);
            Ok(())
        })
        .await?;
    if server.has_uidplus {
        limit
            .imap("UID EXPUNGE", async {
                let gone: Vec<u32> = session.uid_expunge(&set).await?.try_collect().await?;
                drop(gone);
                Ok(())
            })
            .await
    } else {
        // Without UIDPLUS, EXPUNGE also removes other messages someone flagged \Deleted in
        // this folder, which is what their \Deleted flag asks for anyway.
        limit
            .imap("EXPUNGE", async {
                let gone: Vec<u32> = session.expunge().await?.try_collect().await?;
                drop(gone);
                Ok(())
            })
            .await
    }
}

/// Creates `name` unless it exists already, and subscribes to it so mail clients show it.
async fn ensure_mailbox<T>(
    session: &mut Session<T>,
    name: &str,
    limit: Limits,
) -> Result<(), ImapError>
where
    T: AsyncRead + AsyncWrite + Unpin + Debug + Send,
{
    let exists = limit
        .imap("LIST", async {
            let names: Vec<async_imap::types::Name> = session
                .list(Some(""), Some(name))
                .await?
                .try_collect()
                .await?;
            Ok(names.iter().any(|n| n.name() == name))
        })
        .await?;
    if exists {
        return Ok(());
    }
    limit.imap("CREATE", session.create(name)).await?;
    if let Err(e) = limit.imap("SUBSCRIBE", session.subscribe(name)).await {
        tracing::debug!(error = %e, "IMAP subscribe to the processed folder failed");
    }
    tracing::info!(mailbox = %name, "IMAP folder for processed messages created");
    Ok(())
}

/// An IMAP sequence set for sorted UIDs, with runs written as ranges: `1:3,7,9:10`.
fn sequence_set(sorted_uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < sorted_uids.len() {
        let start = sorted_uids[i];
        let mut end = start;
        while i + 1 < sorted_uids.len() && sorted_uids[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = sorted_uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_sets() {
        assert_eq!(sequence_set(&[]), "");
        assert_eq!(sequence_set(&[5]), "5");
        assert_eq!(sequence_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(sequence_set(&[1, 3, 5]), "1,3,5");
        assert_eq!(
            sequence_set(&[u32::MAX - 1, u32::MAX]),
            "4294967294:4294967295"
        );
    }

    #[test]
    fn errors_never_show_the_password() {
        let e = ProtoError::No("LOGIN hunter2 refused".to_owned());
        let text = describe(&e, Some("hunter2"));
        assert!(!text.contains("hunter2"), "{text}");
        let data = b"From: mario.rossi@example.it \xff".to_vec();
        let not_utf8 = std::str::from_utf8(&data).expect_err("not UTF-8");
        let e = ProtoError::Parse(async_imap::error::ParseError::DataNotUtf8(
            data.clone(),
            not_utf8,
        ));
        assert!(!describe(&e, None).contains("mario"));
    }

    #[test]
    fn server_text_is_short_and_clean() {
        let long = format!("a\r\nb{}", "x".repeat(500));
        let t = server_text(&long);
        assert!(t.chars().count() <= 200);
        assert!(!t.contains('\n'));
    }
}
