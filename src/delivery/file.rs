//! The file channel (the default): each message is written under `channels.file_dir` as an
//! `.eml` file (e-mail, PEC) or a `.json` file (SMS), so a new user sees real messages and
//! nothing leaves the machine.
//!
//! A file is named by its outbox id, so a message written again after a crash (written, not yet
//! marked delivered) replaces itself instead of appearing twice.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use lettre::message::Mailbox;
use serde_json::json;

use super::smtp::{SmtpSetupError, build_mime, mailbox};
use super::{Channel, DoubtPolicy, OutMessage, Outcome, Sent};
use crate::sms::{budget, plain_punctuation};
use crate::store::{OutboxError, Store, StoreError};
use crate::time::Timestamp;

fn write_atomically(dir: &Path, name: &str, content: &[u8]) -> std::io::Result<PathBuf> {
    // Citizens' messages: 0600 files in a 0700 folder, whatever the umask.
    crate::private_files::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let mut f = crate::private_files::create_file(&tmp)?;
    f.write_all(content)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// The file channel: each message becomes a file under a folder.
pub struct FileChannel {
    dir: PathBuf,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    domain: String,
}

impl FileChannel {
    /// Writes into `dir`, e-mails from `sender` signed `URP <comune>`, replies to `reply_to`.
    pub fn new(
        dir: &Path,
        sender: &str,
        comune: &str,
        reply_to: Option<&str>,
    ) -> Result<FileChannel, SmtpSetupError> {
        let from = mailbox(&format!("URP {comune}"), sender)?;
        let domain = from.email.domain().to_owned();
        let reply_to = match reply_to {
            Some(r) => Some(mailbox("URP", r)?),
            None => None,
        };
        Ok(FileChannel {
            dir: dir.to_owned(),
            from,
            reply_to,
            domain,
        })
    }

    /// Writes one message; returns the file written.
    pub fn write(&self, msg: &OutMessage) -> Result<PathBuf, Outcome> {
        let stem = format!("{:08}-{}-{}", msg.outbox_id, msg.kind, msg.recipient);
        let io = |e: std::io::Error| {
            Outcome::transient_down(format!("{}: {e}", self.dir.display()), None)
        };
        if msg.channel == crate::domain::Channel::Sms {
            let text = plain_punctuation(msg.text.trim());
            let cost = budget(&text);
            let body = json!({
                "outbox_id": msg.outbox_id,
                "order_id": msg.order_id(),
                "to": msg.address.as_str(),
                "text": text,
                "encoding": cost.encoding.as_str(),
                "parts": cost.parts,
                "ticket": msg.number,
                "kind": msg.kind.as_str(),
            });
            write_atomically(
                &self.dir,
                &format!("{stem}.json"),
                format!("{body:#}\n").as_bytes(),
            )
            .map_err(io)
        } else {
            let (bytes, _) = build_mime(&self.from, self.reply_to.as_ref(), &self.domain, msg)?;
            write_atomically(&self.dir, &format!("{stem}.eml"), &bytes).map_err(io)
        }
    }
}

impl Channel for FileChannel {
    fn name(&self) -> &str {
        "file"
    }

    fn concurrency(&self) -> usize {
        8
    }

    /// A file written again replaces itself: never a duplicate.
    fn doubt_policy(&self) -> DoubtPolicy {
        DoubtPolicy::Resend
    }

    fn ready(&self, _now: Instant) -> bool {
        true
    }

    fn send<'a>(&'a self, msg: &'a OutMessage, _in_doubt: bool) -> super::Sending<'a> {
        Box::pin(async move {
            let started = Instant::now();
            let started_ms = chrono::Utc::now().timestamp_millis();
            // A file written again replaces itself: never a duplicate, in doubt or not.
            let outcome = match self.write(msg) {
                Ok(path) => Outcome::Delivered {
                    provider_id: path.file_name().map(|n| n.to_string_lossy().into_owned()),
                    code: None,
                },
                Err(o) => o,
            };
            Sent::one("file", outcome, started, started_ms)
        })
    }
}

/// What one dispatch pass did.
use super::dispatch::DispatchReport;

/// Delivers every message owed at `now` into `dir` (the `dev` commands and tests).
/// Delivers everything due at `now` through the file channel (every channel writes files).
pub async fn dispatch_files(
    store: &Store,
    dir: &Path,
    from: &str,
    comune: &str,
    now: Timestamp,
) -> Result<DispatchReport, StoreError> {
    let d = super::dispatch::Dispatcher::files(store.clone(), dir, from, comune)
        .map_err(|e| StoreError::Outbox(OutboxError::Corrupt(e.to_string())))?;
    let clock: crate::time::Clock = std::sync::Arc::new(move || now);
    std::sync::Arc::new(d).drain(&clock, u64::MAX).await
}
