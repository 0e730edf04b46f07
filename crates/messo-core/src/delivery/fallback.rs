//! The fallback chain: what is owed instead when a citizen's message is dead or held. Pure.
//!
//! The chain comes from `[delivery] fallback` (default `["sms", "email", "office"]`): a message
//! that died on a channel is owed again on the next channel of the chain for which the citizen
//! has an address and has not opted out; `office` tells the URP the citizen could not be
//! reached. A replacement is a new outbox row whose dedupe key is the dead row's with
//! `>channel-that-failed` appended, so the unique key keeps it to one however often the death
//! is recorded, and the channels already tried are read back from the key.

use serde_json::{Value, json};

use super::NewOutbox;
use crate::domain::Channel;
use crate::ticket::Citizen;
use crate::time::Timestamp;

/// One link of the fallback chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    Email,
    Sms,
    Pec,
    /// The office is told the citizen could not be reached.
    Office,
}

impl Fallback {
    pub fn as_str(self) -> &'static str {
        match self {
            Fallback::Office => "office",
            other => other.channel().map_or("office", Channel::as_str),
        }
    }

    /// The channel of this link (none for the office).
    pub const fn channel(self) -> Option<Channel> {
        match self {
            Fallback::Email => Some(Channel::Email),
            Fallback::Sms => Some(Channel::Sms),
            Fallback::Pec => Some(Channel::Pec),
            Fallback::Office => None,
        }
    }
}

/// The dead row's facts.
#[derive(Debug, Clone)]
pub struct DeadRow<'a> {
    pub ticket_id: i64,
    pub kind: &'a str,
    pub dedupe_key: &'a str,
    pub recipient: &'a str,
    pub channel: &'a str,
    pub language: &'a str,
    pub payload: &'a Value,
    pub error: &'a str,
}

fn parse(channel: &str) -> Option<Fallback> {
    match Channel::parse(channel)? {
        Channel::Email => Some(Fallback::Email),
        Channel::Sms => Some(Fallback::Sms),
        Channel::Pec => Some(Fallback::Pec),
    }
}

/// The row owed instead of `dead`, if any. `held` says the message was not refused but its fate
/// is unknown: the office is told (never another channel, which could make a duplicate).
pub fn replacement(
    dead: &DeadRow<'_>,
    citizen: &Citizen,
    chain: &[Fallback],
    office_email: &str,
    held: bool,
    now: Timestamp,
) -> Option<NewOutbox> {
    if dead.recipient != "citizen" {
        return None;
    }
    // The original key and the channels tried so far.
    let mut parts = dead.dedupe_key.split('>');
    let base_key = parts.next().unwrap_or("").to_owned();
    let mut tried: Vec<Fallback> = parts.filter_map(parse).collect();
    if let Some(c) = parse(dead.channel) {
        tried.push(c);
    }
    let office = |kind: &str| NewOutbox {
        ticket_id: dead.ticket_id,
        kind: kind.to_owned(),
        dedupe_key: format!("{}:{base_key}", dead.kind),
        recipient: "office".to_owned(),
        channel: "email".to_owned(),
        address: office_email.to_owned(),
        language: "it".to_owned(),
        payload: with(
            dead.payload,
            json!({
                "undelivered_kind": dead.kind,
                "failed_channel": dead.channel,
                "failure": dead.error,
            }),
        ),
        not_before: now,
    };
    if held {
        return Some(office("esito_incerto"));
    }
    let start = match chain.iter().position(|f| Some(*f) == parse(dead.channel)) {
        Some(i) => i + 1,
        // A channel outside the chain goes straight to the office, when the chain has it.
        None => chain.iter().position(|f| *f == Fallback::Office)?,
    };
    for link in &chain[start..] {
        if *link == Fallback::Office {
            return Some(office("cittadino_irraggiungibile"));
        }
        if tried.contains(link) {
            continue;
        }
        let Some(channel) = link.channel() else {
            continue;
        };
        let Some(address) = citizen.address(channel).filter(|a| !a.is_empty()) else {
            continue;
        };
        if citizen.opted_out(channel) {
            continue;
        }
        let mut key = dead.dedupe_key.to_owned();
        key.push('>');
        key.push_str(dead.channel);
        return Some(NewOutbox {
            ticket_id: dead.ticket_id,
            kind: dead.kind.to_owned(),
            dedupe_key: key,
            recipient: "citizen".to_owned(),
            channel: channel.as_str().to_owned(),
            address: address.to_owned(),
            language: dead.language.to_owned(),
            payload: with(dead.payload, json!({"fallback_from": dead.channel})),
            not_before: now,
        });
    }
    None
}

fn with(base: &Value, extra: Value) -> Value {
    let mut p = base.clone();
    if let (Value::Object(p), Value::Object(e)) = (&mut p, extra) {
        p.extend(e);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_800_000_000);

    fn c(v: Value) -> Citizen {
        serde_json::from_value(v).expect("a citizen")
    }
    const CHAIN: [Fallback; 3] = [Fallback::Sms, Fallback::Email, Fallback::Office];

    fn dead<'a>(channel: &'a str, key: &'a str, payload: &'a Value) -> DeadRow<'a> {
        DeadRow {
            ticket_id: 7,
            kind: "ricevuta",
            dedupe_key: key,
            recipient: "citizen",
            channel,
            language: "it",
            payload,
            error: "sms: refused (BLACKLISTED)",
        }
    }

    #[test]
    fn sms_falls_back_to_email_then_office() {
        let p = json!({"number": "2026/1"});
        let citizen = c(json!({"mobile": "+393471234567", "email": "a@b.it"}));
        let r = replacement(
            &dead("sms", "e1", &p),
            &citizen,
            &CHAIN,
            "urp@c.it",
            false,
            NOW,
        )
        .expect("an e-mail is owed");
        assert_eq!(
            (r.channel.as_str(), r.address.as_str()),
            ("email", "a@b.it")
        );
        assert_eq!(r.dedupe_key, "e1>sms");
        assert_eq!(r.payload["fallback_from"], "sms");
        // The e-mail dies too: the office is told, keyed on the original notice.
        let r2 = replacement(
            &dead("email", "e1>sms", &p),
            &citizen,
            &CHAIN,
            "urp@c.it",
            false,
            NOW,
        )
        .expect("the office is told");
        assert_eq!(r2.kind, "cittadino_irraggiungibile");
        assert_eq!(r2.dedupe_key, "ricevuta:e1");
        assert_eq!(r2.recipient, "office");
        assert_eq!(r2.payload["failure"], "sms: refused (BLACKLISTED)");
    }

    #[test]
    fn skips_channels_without_address_or_consent_and_never_repeats() {
        let p = json!({});
        let no_email = c(json!({"mobile": "+393471234567"}));
        let r = replacement(
            &dead("sms", "k", &p),
            &no_email,
            &CHAIN,
            "u@c.it",
            false,
            NOW,
        )
        .expect("office");
        assert_eq!(r.kind, "cittadino_irraggiungibile");
        let opted = c(json!({"mobile": "+393471234567", "email": "a@b.it", "opt_out": ["email"]}));
        let r = replacement(&dead("sms", "k", &p), &opted, &CHAIN, "u@c.it", false, NOW)
            .expect("office");
        assert_eq!(r.recipient, "office");
        // A chain email → sms → office: an e-mail that was itself a fallback from SMS does not
        // go back to SMS.
        let chain = [Fallback::Email, Fallback::Sms, Fallback::Office];
        let both = c(json!({"mobile": "+393471234567", "email": "a@b.it"}));
        let r = replacement(
            &dead("email", "k>sms", &p),
            &both,
            &chain,
            "u@c.it",
            false,
            NOW,
        )
        .expect("office");
        assert_eq!(r.recipient, "office");
        // Staff messages never fall back; a chain without office ends quietly.
        let mut staff = dead("email", "k", &p);
        staff.recipient = "office";
        assert!(replacement(&staff, &both, &CHAIN, "u@c.it", false, NOW).is_none());
        assert!(
            replacement(
                &dead("email", "k", &p),
                &both,
                &[Fallback::Sms, Fallback::Email],
                "u@c.it",
                false,
                NOW
            )
            .is_none()
        );
    }

    #[test]
    fn held_messages_go_to_the_office_only() {
        let p = json!({});
        let both = c(json!({"mobile": "+393471234567", "email": "a@b.it"}));
        let r =
            replacement(&dead("sms", "k", &p), &both, &CHAIN, "u@c.it", true, NOW).expect("office");
        assert_eq!(
            (r.kind.as_str(), r.dedupe_key.as_str()),
            ("esito_incerto", "ricevuta:k")
        );
    }
}
