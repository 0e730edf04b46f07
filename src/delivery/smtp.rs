//! E-mail and PEC over SMTP.
//!
//! lettre builds the MIME message and speaks the protocol, but the session is driven here, one
//! command at a time, with our own small pool of connections. That is what lets every failure
//! be classified by the stage it happened at:
//!
//! - before `DATA` is answered (connect, TLS, AUTH, MAIL, RCPT): nothing was accepted, so a
//!   network error or timeout is a plain transient failure; a 4xx is transient, a 5xx on a
//!   recipient is permanent;
//! - after the message was written, waiting for the final reply: a timeout or a dropped
//!   connection leaves the outcome unknown (`Uncertain`), and the row is resent only by policy,
//!   with the same Message-ID.
//!
//! A pooled connection is discarded after any error, and one that the server closed while it
//! sat idle (the first command fails on the network) is replaced at once and the message sent on
//! a fresh connection, which is safe because nothing had been accepted.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, MailBodyParameter, MailParameter};
use lettre::{Address, Message};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::sync::Semaphore;

use super::dkim::DkimSigner;
use super::{Breaker, Channel, DoubtPolicy, OutMessage, Outcome, Sent};
use crate::config::{Delivery, Security, SmtpAccount};

/// Why an SMTP channel could not be set up (a configuration problem).
#[derive(Debug, thiserror::Error)]
pub enum SmtpSetupError {
    #[error("{0} is not an e-mail address")]
    Address(String),
    #[error("cannot read {path}: {source}")]
    CaFile {
        path: String,
        source: std::io::Error,
    },
    #[error("TLS setup: {0}")]
    Tls(String),
}

/// An SMTP account as a channel.
pub struct SmtpChannel {
    name: String,
    account: SmtpAccount,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    domain: String,
    tls: Option<TlsParameters>,
    /// For implicit TLS, the handshake is ours (so the socket can be set up first).
    implicit: Option<tokio_rustls::TlsConnector>,
    hello: ClientId,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    slots: Semaphore,
    breaker: Mutex<Breaker>,
    limiter: Option<DefaultDirectRateLimiter>,
    /// `[smtp.dkim]`: every message is signed as it leaves.
    dkim: Option<Arc<DkimSigner>>,
}

/// The stage a session failed at.
enum Failure {
    /// Nothing was accepted; `stale` says it was the first command on a pooled connection.
    Before { outcome: Outcome, stale: bool },
    /// The message was handed over and the answer is unknown or negative.
    After(Outcome),
}

fn smtp_outcome(stage: &str, e: &lettre::transport::smtp::Error) -> Outcome {
    let code = e.status().map(|c| c.to_string());
    if e.is_permanent() {
        Outcome::Permanent {
            reason: format!("{stage}: {e}"),
            code,
        }
    } else if e.is_transient() {
        Outcome::Transient {
            reason: format!("{stage}: {e}"),
            code,
            retry_after: None,
            provider_down: false,
        }
    } else {
        Outcome::transient_down(format!("{stage}: {e}"), code)
    }
}

fn timeout_outcome(stage: &str, after: Duration) -> Outcome {
    Outcome::transient_down(format!("{stage}: no answer in {} s", after.as_secs()), None)
}

impl SmtpChannel {
    /// A channel named `name` (`smtp` or `pec`) sending from `sender` as `display`.
    pub fn new(
        name: &str,
        account: SmtpAccount,
        sender: &str,
        display: &str,
        reply_to: Option<&str>,
        policy: &Delivery,
    ) -> Result<SmtpChannel, SmtpSetupError> {
        let from_address =
            address(sender).ok_or_else(|| SmtpSetupError::Address(sender.to_owned()))?;
        let domain = from_address.domain().to_owned();
        let from = Mailbox::new(Some(display.to_owned()), from_address);
        let reply_to = match reply_to {
            Some(r) => Some(Mailbox::new(
                None,
                address(r).ok_or_else(|| SmtpSetupError::Address(r.to_owned()))?,
            )),
            None => None,
        };
        let tls = match account.security {
            Security::Plain => None,
            _ => Some(tls_parameters(&account)?),
        };
        let implicit = match account.security {
            Security::Tls => Some(implicit_tls(account.ca_bundle.as_deref())?),
            _ => None,
        };
        let hello = ClientId::Domain(account.hello_name.clone().unwrap_or_else(|| domain.clone()));
        let limiter =
            NonZeroU32::new(account.rate_per_s).map(|r| RateLimiter::direct(Quota::per_second(r)));
        Ok(SmtpChannel {
            name: name.to_owned(),
            slots: Semaphore::new(account.pool_size as usize),
            breaker: Mutex::new(Breaker::new(
                policy.breaker_failures,
                Duration::from_secs(policy.breaker_cooldown_s),
            )),
            account,
            from,
            reply_to,
            domain,
            tls,
            implicit,
            hello,
            idle: Mutex::new(Vec::new()),
            limiter,
            dkim: None,
        })
    }

    /// Signs every message with `signer` (DKIM) from now on.
    pub fn with_dkim(mut self, signer: Arc<DkimSigner>) -> SmtpChannel {
        self.dkim = Some(signer);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Connections at most.
    pub fn pool_size(&self) -> usize {
        self.account.pool_size as usize
    }

    /// Whether a message whose outcome is unknown is sent again (same Message-ID).
    pub fn resends_uncertain(&self) -> bool {
        self.account.resend_uncertain
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.account.timeout_s)
    }

    /// The MIME message of `msg` as this account sends it (DKIM-signed when configured).
    pub fn build(&self, msg: &OutMessage) -> Result<(Vec<u8>, Address), Outcome> {
        let (bytes, to) = build_mime(&self.from, self.reply_to.as_ref(), &self.domain, msg)?;
        match &self.dkim {
            Some(signer) => Ok((signer.sign(&bytes), to)),
            None => Ok((bytes, to)),
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, Outcome> {
        let t = self.timeout();
        let addr = (self.account.host.as_str(), self.account.port);
        let tcp = match tokio::time::timeout(t, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(Outcome::transient_down(format!("connect: {e}"), None)),
            Err(_) => return Err(timeout_outcome("connect", t)),
        };
        // Each SMTP command is a small write followed by a wait for the answer: without
        // TCP_NODELAY the end-of-data line waits for a delayed ACK (≈ 40 ms per message).
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn AsyncTokioStream> = match &self.implicit {
            Some(connector) => {
                let name = match ServerName::try_from(self.account.host.clone()) {
                    Ok(n) => n,
                    Err(e) => return Err(Outcome::transient_down(format!("TLS: {e}"), None)),
                };
                match tokio::time::timeout(t, connector.connect(name, tcp)).await {
                    Ok(Ok(s)) => Box::new(TlsTcp(s)),
                    Ok(Err(e)) => return Err(Outcome::transient_down(format!("TLS: {e}"), None)),
                    Err(_) => return Err(timeout_outcome("TLS handshake", t)),
                }
            }
            None => Box::new(tcp),
        };
        let greeting = AsyncSmtpConnection::connect_with_transport(stream, &self.hello);
        let mut conn = match tokio::time::timeout(t, greeting).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(Outcome::transient_down(format!("greeting: {e}"), None)),
            Err(_) => return Err(timeout_outcome("greeting", t)),
        };
        let starttls = match self.account.security {
            Security::StartTls => {
                if !conn.can_starttls() {
                    conn.abort().await;
                    return Err(Outcome::transient_down(
                        "the server does not offer STARTTLS, which the configuration requires",
                        None,
                    ));
                }
                true
            }
            Security::StartTlsOpportunistic => conn.can_starttls(),
            _ => false,
        };
        if starttls && let Some(tls) = self.tls.clone() {
            match tokio::time::timeout(t, conn.starttls(tls, &self.hello)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(Outcome::transient_down(format!("STARTTLS: {e}"), None)),
                Err(_) => return Err(timeout_outcome("STARTTLS", t)),
            }
        }
        if let (Some(user), Some(pass)) = (&self.account.username, &self.account.password) {
            let creds = Credentials::new(user.clone(), pass.clone());
            match tokio::time::timeout(t, conn.auth(&[Mechanism::Plain, Mechanism::Login], &creds))
                .await
            {
                Ok(Ok(_)) => {}
                // Refused credentials are the account's fault, not the message's.
                Ok(Err(e)) => {
                    conn.abort().await;
                    return Err(Outcome::transient_down(
                        format!("AUTH: {e}"),
                        e.status().map(|c| c.to_string()),
                    ));
                }
                Err(_) => return Err(timeout_outcome("AUTH", t)),
            }
        }
        Ok(conn)
    }

    fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        let max_idle = Duration::from_secs(self.account.idle_timeout_s);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some((conn, since)) = idle.pop() {
            if since.elapsed() < max_idle {
                return Some(conn);
            }
            // Too long idle: the server has likely closed it. Dropping closes the socket.
            drop(conn);
        }
        None
    }

    fn put_idle(&self, conn: AsyncSmtpConnection) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((conn, Instant::now()));
    }

    async fn session(
        &self,
        conn: &mut AsyncSmtpConnection,
        email: &[u8],
        from: &Address,
        to: &Address,
        pooled: bool,
    ) -> Result<Outcome, Failure> {
        let t = self.timeout();
        let mut params = Vec::new();
        if !email.is_ascii() {
            params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        // MAIL: a network failure here on a pooled connection means it went stale.
        match tokio::time::timeout(t, conn.command(Mail::new(Some(from.clone()), params))).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                let stale = pooled && e.status().is_none();
                return Err(Failure::Before {
                    outcome: smtp_outcome("MAIL FROM", &e),
                    stale,
                });
            }
            Err(_) => {
                return Err(Failure::Before {
                    outcome: timeout_outcome("MAIL FROM", t),
                    stale: false,
                });
            }
        }
        match tokio::time::timeout(t, conn.command(Rcpt::new(to.clone(), vec![]))).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(Failure::Before {
                    outcome: smtp_outcome("RCPT TO", &e),
                    stale: false,
                });
            }
            Err(_) => {
                return Err(Failure::Before {
                    outcome: timeout_outcome("RCPT TO", t),
                    stale: false,
                });
            }
        }
        match tokio::time::timeout(t, conn.command(Data)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(Failure::Before {
                    outcome: smtp_outcome("DATA", &e),
                    stale: false,
                });
            }
            Err(_) => {
                return Err(Failure::Before {
                    outcome: timeout_outcome("DATA", t),
                    stale: false,
                });
            }
        }
        match tokio::time::timeout(t, conn.message(email)).await {
            Ok(Ok(resp)) => Ok(Outcome::Delivered {
                provider_id: resp.first_line().map(|l| l.chars().take(120).collect()),
                code: Some(resp.code().to_string()),
            }),
            Ok(Err(e)) if e.status().is_some() => {
                Err(Failure::After(smtp_outcome("end of DATA", &e)))
            }
            Ok(Err(e)) => Err(Failure::After(Outcome::Uncertain {
                reason: format!("connection lost after the message was sent: {e}"),
            })),
            Err(_) => Err(Failure::After(Outcome::Uncertain {
                reason: format!(
                    "no answer within {} s after the message was sent",
                    t.as_secs()
                ),
            })),
        }
    }

    async fn send_once(&self, msg: &OutMessage) -> Outcome {
        let (email, to) = match self.build(msg) {
            Ok(x) => x,
            Err(o) => return o,
        };
        let from = self.from.email.clone();
        if let Some(l) = &self.limiter {
            l.until_ready().await;
        }
        // A pooled connection first; if it turns out stale, once more on a fresh one.
        let mut pooled = self.take_idle();
        loop {
            let was_pooled = pooled.is_some();
            let mut conn = match pooled.take() {
                Some(c) => c,
                None => match self.connect().await {
                    Ok(c) => c,
                    Err(o) => return o,
                },
            };
            match self
                .session(&mut conn, &email, &from, &to, was_pooled)
                .await
            {
                Ok(outcome) => {
                    self.put_idle(conn);
                    return outcome;
                }
                Err(Failure::Before { stale: true, .. }) => {
                    drop(conn);
                    tracing::debug!(channel = %self.name, "pooled connection was stale; reconnecting");
                    continue;
                }
                Err(Failure::Before { outcome, .. }) => {
                    // Reset the session so the connection could be reused; simpler and safer
                    // to drop it (lettre #743: never reuse a connection after an error).
                    conn.abort().await;
                    return outcome;
                }
                Err(Failure::After(outcome)) => {
                    drop(conn);
                    return outcome;
                }
            }
        }
    }

    /// Closes pooled connections politely.
    pub async fn close(&self) {
        let conns: Vec<_> =
            std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        for (mut c, _) in conns {
            let _ = c.quit().await;
        }
    }
}

impl Channel for SmtpChannel {
    fn name(&self) -> &str {
        SmtpChannel::name(self)
    }

    fn concurrency(&self) -> usize {
        self.pool_size()
    }

    /// Resent with the same Message-ID when `resend_uncertain` says so; otherwise held.
    fn doubt_policy(&self) -> DoubtPolicy {
        if self.resends_uncertain() {
            DoubtPolicy::Resend
        } else {
            DoubtPolicy::Hold
        }
    }

    fn ready(&self, now: Instant) -> bool {
        self.breaker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ready(now)
    }

    fn send<'a>(&'a self, msg: &'a OutMessage, in_doubt: bool) -> super::Sending<'a> {
        let span = tracing::debug_span!(
            "smtp",
            account = %self.name,
            outbox_id = msg.outbox_id,
            to = %crate::redact::mask(msg.address.as_str()),
            in_doubt = in_doubt
        );
        Box::pin(tracing::Instrument::instrument(
            async move {
                // A connection slot first, then the breaker: a message waiting for a slot learns of the
                // failures of the ones before it.
                let Ok(_slot) = self.slots.acquire().await else {
                    return Sent {
                        attempts: vec![],
                        resent: false,
                    };
                };
                let started = Instant::now();
                let started_ms = chrono::Utc::now().timestamp_millis();
                let allowed = self
                    .breaker
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .acquire(started);
                if !allowed {
                    return Sent {
                        attempts: vec![],
                        resent: false,
                    };
                }
                let outcome = self.send_once(msg).await;
                self.breaker
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .record(outcome.provider_healthy(), Instant::now());
                let mut sent = Sent::one(&self.name, outcome, started, started_ms);
                // Sent again while an earlier attempt may have gone through: same Message-ID.
                sent.resent = in_doubt;
                sent
            },
            span,
        ))
    }
}

/// The MIME message: plain text and HTML alternatives (and the files attached, if any), the
/// row's stable Message-ID, the ticket number in a header, `Auto-Submitted` so that vacation responders stay quiet (RFC 3834).
pub fn build_mime(
    from: &Mailbox,
    reply_to: Option<&Mailbox>,
    domain: &str,
    msg: &OutMessage,
) -> Result<(Vec<u8>, Address), Outcome> {
    let masked = || crate::redact::mask(msg.address.as_str());
    let to = match &msg.address {
        crate::domain::Address::Email(a) => lettre_address(a).map_err(|why| {
            format!(
                "{} is not an e-mail address we can send to: it {why}",
                masked()
            )
        }),
        crate::domain::Address::Phone(_) => Err(format!(
            "{} is a phone number, not an e-mail address",
            masked()
        )),
        crate::domain::Address::Fiscal(_) => Err(format!(
            "{} is a codice fiscale, not an e-mail address",
            masked()
        )),
    }
    .map_err(Outcome::permanent)?;
    let mut b = Message::builder()
        .from(from.clone())
        .to(Mailbox::new(None, to.clone()))
        .subject(msg.subject.clone())
        .message_id(Some(msg.message_id(domain)))
        .date_now()
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Messo-Ticket"),
            msg.number.clone(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Messo-Kind"),
            msg.kind.as_str().to_owned(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_owned(),
        ));
    let tagged = msg
        .reply_to
        .as_deref()
        .and_then(address)
        .map(|a| Mailbox::new(None, a));
    if let Some(r) = tagged.as_ref().or(reply_to) {
        b = b.reply_to(r.clone());
    }
    let html = msg.html.clone().unwrap_or_else(|| html_of(&msg.text));
    let body = MultiPart::alternative_plain_html(msg.text.clone(), html);
    // A message with files is `multipart/mixed`: the two alternatives, then each file. Every
    // other message keeps its `multipart/alternative` body as it was.
    let body = if msg.attachments.is_empty() {
        body
    } else {
        let mut mixed = MultiPart::mixed().multipart(body);
        for a in &msg.attachments {
            let content_type = ContentType::parse(&a.content_type).map_err(|e| {
                Outcome::permanent(format!(
                    "the attachment {:?} has no valid media type: {e}",
                    a.name
                ))
            })?;
            mixed = mixed.singlepart(
                lettre::message::Attachment::new(a.name.clone()).body(a.data.clone(), content_type),
            );
        }
        mixed
    };
    let m = b
        .multipart(body)
        .map_err(|e| Outcome::permanent(format!("cannot build the message: {e}")))?;
    Ok((m.formatted(), to))
}

/// lettre's parameters for STARTTLS with `account`: the system's roots plus `ca_bundle`.
/// (Also what `messo doctor` checks the server with.)
pub(crate) fn tls_parameters(account: &SmtpAccount) -> Result<TlsParameters, SmtpSetupError> {
    let mut b = TlsParameters::builder(account.host.clone());
    if let Some(path) = &account.ca_bundle {
        let pem = std::fs::read(path).map_err(|source| SmtpSetupError::CaFile {
            path: path.display().to_string(),
            source,
        })?;
        let cert = Certificate::from_pem(&pem).map_err(|e| SmtpSetupError::Tls(e.to_string()))?;
        b = b.add_root_certificate(cert);
    }
    b.build_rustls()
        .map_err(|e| SmtpSetupError::Tls(e.to_string()))
}

/// A TLS stream lettre can drive (implicit TLS, where the handshake comes before SMTP).
#[derive(Debug)]
pub(crate) struct TlsTcp(pub(crate) tokio_rustls::client::TlsStream<tokio::net::TcpStream>);

impl tokio::io::AsyncRead for TlsTcp {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsTcp {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsTcp {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

/// The client side of implicit TLS: the system's roots plus `ca_bundle`.
pub(crate) fn implicit_tls(
    ca_bundle: Option<&std::path::Path>,
) -> Result<tokio_rustls::TlsConnector, SmtpSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_bundle {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| SmtpSetupError::Tls(format!("{}: {e}", path.display())))?;
        for cert in certs {
            let cert = cert.map_err(|e| SmtpSetupError::Tls(format!("{}: {e}", path.display())))?;
            roots
                .add(cert)
                .map_err(|e| SmtpSetupError::Tls(format!("{}: {e}", path.display())))?;
        }
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// A mailbox with a display name.
pub fn mailbox(display: &str, text: &str) -> Result<Mailbox, SmtpSetupError> {
    let a = address(text).ok_or_else(|| SmtpSetupError::Address(text.to_owned()))?;
    Ok(Mailbox::new(Some(display.to_owned()), a))
}

/// `text` as lettre's address, when it is one under [`crate::domain::EmailAddress`]'s rules:
/// what the API, direct writes and the configuration accept is exactly what is sent to.
fn address(text: &str) -> Option<Address> {
    lettre_address(&crate::domain::EmailAddress::parse(text).ok()?).ok()
}

/// The address as lettre sends to it. Every address [`crate::domain::EmailAddress`] accepts is
/// one lettre accepts (a property test below holds that); the error is kept for the day that
/// stops being true.
pub fn lettre_address(
    a: &crate::domain::EmailAddress,
) -> Result<Address, lettre::address::AddressError> {
    Address::new(a.local_part(), a.domain())
}

/// The HTML alternative of a plain text: escaped, paragraphs kept.
pub fn html_of(text: &str) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let paragraphs: Vec<String> = text
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| format!("<p>{}</p>", esc(p.trim_end()).replace('\n', "<br>\n")))
        .collect();
    format!(
        "<!DOCTYPE html>\n<html lang=\"it\"><head><meta charset=\"utf-8\"></head>\n<body style=\"font-family: sans-serif; line-height: 1.5\">\n{}\n</body></html>\n",
        paragraphs.join("\n")
    )
}

/// Shared handle.
pub type SharedSmtp = Arc<SmtpChannel>;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn html_is_escaped_with_paragraphs() {
        let h = html_of("Gentile <cittadino>,\n\nriga uno\nriga & due\n");
        assert!(h.contains("<p>Gentile &lt;cittadino&gt;,</p>"));
        assert!(h.contains("<p>riga uno<br>\nriga &amp; due</p>"));
    }

    /// Near-addresses: pieces of every kind that matters, glued in any order.
    fn near_address() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            "[a-zA-Z0-9]{1,8}",
            Just(".".to_owned()),
            Just("..".to_owned()),
            Just("@".to_owned()),
            Just("-".to_owned()),
            "[!#$%&'*+/=?^_`{|}~-]",
            "[ <>()\",;:\\\\\\[\\]]",
            Just("xn--".to_owned()),
            "[0-9]{1,3}",
            Just("é".to_owned()),
        ];
        proptest::collection::vec(piece, 1..14).prop_map(|v| v.concat())
    }

    fn well_formed() -> impl Strategy<Value = String> {
        (
            "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,20}(\\.[a-zA-Z0-9_+-]{1,10}){0,3}",
            "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?){0,3}\\.[a-z]{2,6}",
        )
            .prop_map(|(l, d)| format!("{l}@{d}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Whatever we accept, lettre accepts and sends to unchanged.
        #[test]
        fn what_we_accept_lettre_accepts(s in prop_oneof![near_address(), well_formed()]) {
            if let Ok(e) = crate::domain::EmailAddress::parse(&s) {
                let parsed = s.parse::<lettre::Address>();
                prop_assert!(parsed.is_ok(), "lettre refuses {:?}", s);
                let a = parsed.unwrap();
                prop_assert_eq!(a.to_string(), s.clone());
                prop_assert_eq!(lettre_address(&e).map(|x| x.to_string()), Ok(s.clone()));
                let mailbox = lettre::message::Mailbox::new(None, a);
                prop_assert_eq!(mailbox.to_string(), s);
            }
        }
    }
}
