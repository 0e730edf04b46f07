//! E-mail replies into the pipeline: a raw message (from the IMAP mailbox) read by
//! [`super::mail`], its attachments kept by hash, and the record stored like a webhook before
//! the server is told the message was processed.

use sha2::{Digest, Sha256};

use super::imap::{ImapError, PollReport, poll_once};
use super::mail::{MailReply, parse_rfc822};
use super::{Parsed, Route};
use crate::config::Inbound;
use crate::store::{InboundWriter, NewInbound};
use crate::time::Clock;

/// The endpoint name of records from the polled mailbox.
pub const IMAP_ENDPOINT: &str = "imap";

/// Why a message from the mailbox was not stored; it stays unseen for the next poll.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("an attachment could not be kept: {0}")]
    Attachment(std::io::Error),
    /// The store's writer refused the record (its own words).
    #[error("{0}")]
    Store(String),
}

/// A parsed e-mail as an inbound record (attachments not yet saved).
pub fn parsed_of(m: &MailReply, raw: &[u8]) -> Parsed {
    Parsed {
        route: Route::Mail,
        external_id: m
            .message_id
            .clone()
            .filter(|id| !id.is_empty() && id.len() <= 200)
            .unwrap_or_else(|| format!("sha256:{}", hex::encode(&Sha256::digest(raw)[..16]))),
        sender: Some(m.from.clone()),
        recipient: m.to.first().cloned(),
        recipients: m.to.clone(),
        subject: Some(m.subject.clone()),
        text: Some(m.text.clone()),
        automatic: m.automatic,
        ..Parsed::default()
    }
}

/// One raw message: parsed (or, when it cannot be, kept as an ignored record so it is not
/// fetched forever), attachments saved, stored. Its span names the sender masked, never the
/// message's words.
#[tracing::instrument(
    name = "imap_message",
    level = "debug",
    skip_all,
    fields(bytes = raw.len(), sender = tracing::field::Empty)
)]
pub async fn accept_raw(
    raw: &[u8],
    inbound: &Inbound,
    writer: &InboundWriter,
    clock: &Clock,
) -> Result<(), AcceptError> {
    let parsed = match parse_rfc822(raw) {
        Ok(m) => {
            tracing::Span::current().record("sender", crate::redact::mask(&m.from).as_str());
            let mut p = parsed_of(&m, raw);
            // Judged now, with the relays trusted now; the record keeps the verdict.
            p.auth = Some(super::auth::for_mailbox(
                &m.auth_results,
                &m.from,
                &inbound.trusted_authserv_ids,
            ));
            for a in m.attachments.iter().take(50) {
                let meta = super::files::save(
                    &inbound.attachments_dir,
                    inbound.max_attachment_bytes,
                    &a.name,
                    &a.content_type,
                    &a.bytes,
                )
                .await
                .map_err(AcceptError::Attachment)?;
                p.attachments.push(meta);
            }
            p
        }
        Err(e) => {
            tracing::warn!(error = %e, "a message in the mailbox could not be read; kept as ignored");
            Parsed {
                route: Route::Mail,
                external_id: format!("sha256:{}", hex::encode(&Sha256::digest(raw)[..16])),
                automatic: true,
                text: Some(format!("unreadable message: {e}")),
                ..Parsed::default()
            }
        }
    };
    // The raw message is kept for audit (text parts; attachments are in their folder too).
    let raw_text = String::from_utf8_lossy(&raw[..raw.len().min(1 << 20)]).into_owned();
    writer
        .submit(NewInbound {
            endpoint: IMAP_ENDPOINT.to_owned(),
            parsed,
            raw: raw_text,
            received_at: clock(),
        })
        .await
        .map(|_| ())
        .map_err(AcceptError::Store)
}

/// One poll of the mailbox.
#[tracing::instrument(
    name = "imap_poll",
    skip_all,
    fields(host = %account.host, mailbox = %account.mailbox)
)]
pub async fn poll(
    account: &super::imap::ImapAccount,
    inbound: &Inbound,
    writer: &InboundWriter,
    clock: &Clock,
) -> Result<PollReport, ImapError> {
    poll_once(account, |_uid, raw| async move {
        accept_raw(&raw, inbound, writer, clock).await
    })
    .await
}
