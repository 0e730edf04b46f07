//! Delivery of owed notices. The file channel (the default) writes each message under
//! `channels.file_dir` as an `.eml` file (e-mail, PEC) or a `.json` file (SMS), so a new user sees
//! real messages and nothing leaves the machine.
//!
//! A file is named by its outbox id, so a message written again after a crash (written, not yet
//! marked delivered) replaces itself instead of appearing twice.

pub mod render;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::store::{OutboxRow, Store, StoreError};
use crate::time::Timestamp;

pub use render::{Rendered, render};

/// Rows leased per pass.
const BATCH: i64 = 100;
/// How long a lease lasts before another worker may take the row.
const LEASE_S: i64 = 60;
/// Attempts before a row goes dead.
const MAX_ATTEMPTS: i64 = 10;

/// An e-mail address or phone number with most of it hidden, for logs.
pub fn mask(address: &str) -> String {
    if let Some((local, domain)) = address.split_once('@') {
        let first: String = local.chars().take(1).collect();
        format!("{first}***@{domain}")
    } else {
        let n = address.chars().count();
        let tail: String = address.chars().skip(n.saturating_sub(3)).collect();
        format!("{}***{tail}", address.chars().take(3).collect::<String>())
    }
}

fn encode_word(text: &str) -> String {
    if text.is_ascii() {
        return text.to_owned();
    }
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = text.as_bytes();
    let mut out = String::with_capacity(b.len() * 4 / 3 + 16);
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(T[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    format!("=?UTF-8?B?{out}?=")
}

/// The `.eml` text of an e-mail.
pub fn eml(row: &OutboxRow, msg: &Rendered, from: &str, comune: &str, now: Timestamp) -> String {
    let date = now.to_chrono().to_rfc2822();
    format!(
        "From: {} <{from}>\r\nTo: {}\r\nSubject: {}\r\nDate: {date}\r\nMessage-ID: <outbox-{}.{}@messo>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\
         X-Messo-Ticket: {}\r\nX-Messo-Kind: {}\r\n\r\n{}",
        encode_word(&format!("URP {comune}")),
        row.address,
        encode_word(&msg.subject),
        row.id,
        row.ticket_id,
        row.payload["number"].as_str().unwrap_or(""),
        row.kind,
        msg.body.replace('\n', "\r\n"),
    )
}

fn write_atomically(dir: &Path, name: &str, content: &[u8]) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(content)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Writes one message into `dir`; returns the file written.
pub fn deliver_to_file(
    dir: &Path,
    row: &OutboxRow,
    from: &str,
    comune: &str,
    now: Timestamp,
) -> std::io::Result<PathBuf> {
    let msg = render(row, comune);
    let stem = format!("{:08}-{}-{}", row.id, row.kind, row.recipient);
    if row.channel == "sms" {
        let body = json!({
            "outbox_id": row.id,
            "to": row.address,
            "text": msg.body,
            "ticket": row.payload["number"],
            "kind": row.kind,
        });
        write_atomically(
            dir,
            &format!("{stem}.json"),
            format!("{body:#}\n").as_bytes(),
        )
    } else {
        write_atomically(
            dir,
            &format!("{stem}.eml"),
            eml(row, &msg, from, comune, now).as_bytes(),
        )
    }
}

/// What one dispatch pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchReport {
    pub delivered: u64,
    pub failed: u64,
}

/// Leases what may go out now and delivers it through the file channel.
pub async fn dispatch_files(
    store: &Store,
    dir: &Path,
    from: &str,
    comune: &str,
    now: Timestamp,
) -> Result<DispatchReport, StoreError> {
    dispatch_files_bounded(store, dir, from, comune, now, u64::MAX).await
}

/// Like [`dispatch_files`], stopping after about `max` messages (the daemon's pass stays short so
/// shutdown and the watchdog are never held up by a long queue).
pub async fn dispatch_files_bounded(
    store: &Store,
    dir: &Path,
    from: &str,
    comune: &str,
    now: Timestamp,
    max: u64,
) -> Result<DispatchReport, StoreError> {
    let mut report = DispatchReport::default();
    while report.delivered + report.failed < max {
        let rows = store.lease_outbox(now, BATCH, LEASE_S).await?;
        let n = rows.len();
        for row in rows {
            match deliver_to_file(dir, &row, from, comune, now) {
                Ok(path) => {
                    store.outbox_delivered(row.id, now).await?;
                    report.delivered += 1;
                    tracing::info!(
                        outbox_id = row.id,
                        kind = %row.kind,
                        to = %mask(&row.address),
                        file = %path.display(),
                        "delivered"
                    );
                }
                Err(e) => {
                    let retry = (row.attempts < MAX_ATTEMPTS)
                        .then(|| now.plus(30 * (1 << row.attempts.min(8))));
                    store
                        .outbox_failed(row.id, &e.to_string(), retry, now)
                        .await?;
                    report.failed += 1;
                    tracing::warn!(outbox_id = row.id, error = %e, "file delivery failed");
                }
            }
        }
        if n < BATCH as usize {
            break;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_personal_data() {
        assert_eq!(mask("mario.rossi@example.it"), "m***@example.it");
        assert_eq!(mask("+393471234567"), "+39***567");
        assert_eq!(encode_word("Ciao"), "Ciao");
        assert_eq!(encode_word("Richiesta è"), "=?UTF-8?B?UmljaGllc3RhIMOo?=");
    }
}
