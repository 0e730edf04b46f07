//! PEC receipts. A certified e-mail is answered by its PEC servers with receipts, themselves
//! e-mails: the sender's server accepts it or not (*accettazione*, *non-accettazione*), the
//! recipient's server delivers it or not (*avvenuta-consegna*, *errore-consegna*, with a
//! *preavviso* when it is late). Each carries the kind in `X-Ricevuta` and the Message-ID of our
//! message in `X-Riferimento-Message-ID`.
//!
//! The receipts reach Messo through `messo pec-receipt`, run by the PEC mailbox's delivery agent
//! (a pipe) with one message on standard input. Parsing is pure and reads only the headers.

use crate::delivery::Outcome;

/// What a receipt says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptKind {
    /// Accepted by our PEC server.
    Accettazione,
    /// Refused by our PEC server: it will not be delivered.
    NonAccettazione,
    /// Taken over by the recipient's PEC server.
    PresaInCarico,
    /// In the recipient's mailbox: delivered, with legal value.
    AvvenutaConsegna,
    /// Not delivered within the time limit yet (a warning).
    PreavvisoErroreConsegna,
    /// Not delivered.
    ErroreConsegna,
    /// A virus was found: not delivered.
    RilevazioneVirus,
}

impl ReceiptKind {
    pub fn parse(s: &str) -> Option<ReceiptKind> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "accettazione" => ReceiptKind::Accettazione,
            "non-accettazione" => ReceiptKind::NonAccettazione,
            "presa-in-carico" => ReceiptKind::PresaInCarico,
            "avvenuta-consegna" => ReceiptKind::AvvenutaConsegna,
            "preavviso-errore-consegna" => ReceiptKind::PreavvisoErroreConsegna,
            "errore-consegna" => ReceiptKind::ErroreConsegna,
            "rilevazione-virus" => ReceiptKind::RilevazioneVirus,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptKind::Accettazione => "accettazione",
            ReceiptKind::NonAccettazione => "non-accettazione",
            ReceiptKind::PresaInCarico => "presa-in-carico",
            ReceiptKind::AvvenutaConsegna => "avvenuta-consegna",
            ReceiptKind::PreavvisoErroreConsegna => "preavviso-errore-consegna",
            ReceiptKind::ErroreConsegna => "errore-consegna",
            ReceiptKind::RilevazioneVirus => "rilevazione-virus",
        }
    }

    /// Where the message stands after this receipt: `delivered`, `failed`, or `pending` (no
    /// final word yet).
    pub fn final_state(self) -> &'static str {
        match self {
            ReceiptKind::AvvenutaConsegna => "delivered",
            ReceiptKind::NonAccettazione
            | ReceiptKind::ErroreConsegna
            | ReceiptKind::RilevazioneVirus => "failed",
            _ => "pending",
        }
    }

    /// The failure, as a delivery outcome, for a receipt that ends the message.
    pub fn failure(self) -> Option<Outcome> {
        (self.final_state() == "failed").then(|| Outcome::Permanent {
            reason: format!("PEC receipt: {}", self.as_str()),
            code: Some(self.as_str().to_owned()),
        })
    }
}

/// A parsed receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub kind: ReceiptKind,
    /// Our outbox row, read back from the Message-ID we gave the message.
    pub outbox_id: i64,
    pub ticket_id: i64,
    /// The message's subject line (it names the error for a failure).
    pub subject: String,
}

/// Why a message is not a receipt for one of our messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotAReceipt {
    #[error("no X-Ricevuta header: not a PEC receipt")]
    NoReceiptHeader,
    #[error("unknown receipt kind {0:?}")]
    UnknownKind(String),
    #[error("no X-Riferimento-Message-ID header")]
    NoReference,
    #[error("the receipt is about {0}, which is not a message Messo sent")]
    NotOurs(String),
}

/// The value of header `name` in `raw` (first occurrence, unfolded), case-insensitively.
fn header(raw: &str, name: &str) -> Option<String> {
    let head = raw
        .split("\r\n\r\n")
        .next()
        .unwrap_or(raw)
        .split("\n\n")
        .next()
        .unwrap_or(raw);
    let mut found: Option<String> = None;
    for line in head.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(v) = found.as_mut() {
            if line.starts_with(' ') || line.starts_with('\t') {
                v.push(' ');
                v.push_str(line.trim());
                continue;
            }
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.trim().eq_ignore_ascii_case(name)
        {
            found = Some(v.trim().to_owned());
        }
    }
    found
}

/// Reads our `<messo.<outbox>.<ticket>@domain>` back.
pub fn our_message_id(id: &str) -> Option<(i64, i64)> {
    let inner = id.trim().trim_start_matches('<').trim_end_matches('>');
    let (local, _) = inner.split_once('@')?;
    let mut parts = local.split('.');
    if parts.next()? != "messo" {
        return None;
    }
    let outbox = parts.next()?.parse().ok()?;
    let ticket = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((outbox, ticket))
}

/// Parses a PEC receipt from the raw message.
pub fn parse_receipt(raw: &str) -> Result<Receipt, NotAReceipt> {
    let kind_text = header(raw, "X-Ricevuta").ok_or(NotAReceipt::NoReceiptHeader)?;
    let kind = ReceiptKind::parse(&kind_text).ok_or(NotAReceipt::UnknownKind(kind_text))?;
    let reference = header(raw, "X-Riferimento-Message-ID").ok_or(NotAReceipt::NoReference)?;
    let (outbox_id, ticket_id) =
        our_message_id(&reference).ok_or(NotAReceipt::NotOurs(reference))?;
    Ok(Receipt {
        kind,
        outbox_id,
        ticket_id,
        subject: header(raw, "Subject").unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSEGNA: &str = "Return-Path: <posta-certificata@pec.example.it>\r\n\
        X-Ricevuta: avvenuta-consegna\r\n\
        X-Riferimento-Message-ID:\r\n <messo.42.7@comune.roma.it>\r\n\
        Subject: CONSEGNA: Richiesta 2026/1 ricevuta\r\n\
        X-Trasporto: posta-certificata\r\n\r\n\
        Ricevuta di avvenuta consegna\r\nX-Ricevuta: errore-consegna\r\n";

    #[test]
    fn reads_kind_and_our_message_from_the_headers_only() {
        let r = parse_receipt(CONSEGNA).expect("a receipt");
        assert_eq!(r.kind, ReceiptKind::AvvenutaConsegna);
        assert_eq!((r.outbox_id, r.ticket_id), (42, 7));
        assert_eq!(r.subject, "CONSEGNA: Richiesta 2026/1 ricevuta");
        assert_eq!(r.kind.final_state(), "delivered");
        assert!(r.kind.failure().is_none());
        let err = CONSEGNA.replace("avvenuta-consegna", "errore-consegna");
        let r = parse_receipt(&err).expect("a receipt");
        assert!(matches!(r.kind.failure(), Some(Outcome::Permanent { .. })));
    }

    #[test]
    fn other_mail_is_told_apart() {
        assert_eq!(
            parse_receipt("Subject: ciao\r\n\r\ntesto"),
            Err(NotAReceipt::NoReceiptHeader)
        );
        assert_eq!(
            parse_receipt("X-Ricevuta: boh\r\n\r\n"),
            Err(NotAReceipt::UnknownKind("boh".into()))
        );
        assert!(matches!(
            parse_receipt(
                "X-Ricevuta: accettazione\r\nX-Riferimento-Message-ID: <abc@x.it>\r\n\r\n"
            ),
            Err(NotAReceipt::NotOurs(_))
        ));
        assert_eq!(our_message_id("<messo.1.2.3@x>"), None);
        assert_eq!(our_message_id("<messo.10.20@x.it>"), Some((10, 20)));
    }
}
