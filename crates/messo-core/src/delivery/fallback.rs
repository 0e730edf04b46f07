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
use crate::domain::{Address, Channel, EmailAddress, Kind, Lang, Recipient};
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

    /// The link of `channel`.
    pub const fn of(channel: Channel) -> Fallback {
        match channel {
            Channel::Email => Fallback::Email,
            Channel::Sms => Fallback::Sms,
            Channel::Pec => Fallback::Pec,
        }
    }
}

/// The dead row's facts: what it was, not where it went (a replacement goes elsewhere).
#[derive(Debug, Clone, PartialEq)]
pub struct DeadRow {
    pub ticket_id: i64,
    pub kind: Kind,
    pub dedupe_key: String,
    pub recipient: Recipient,
    pub channel: Channel,
    pub language: Lang,
    pub payload: Value,
}

/// The link of a channel named in a dedupe key (`…>sms`).
fn parse(channel: &str) -> Option<Fallback> {
    Channel::parse(channel).map(Fallback::of)
}

/// The row owed instead of `dead`, which failed with `error`, if any. `held` says the message
/// was not refused but its fate is unknown: the office is told (never another channel, which
/// could make a duplicate).
pub fn replacement(
    dead: &DeadRow,
    error: &str,
    citizen: &Citizen,
    chain: &[Fallback],
    office_email: &EmailAddress,
    held: bool,
    now: Timestamp,
) -> Option<NewOutbox> {
    if dead.recipient != Recipient::Citizen {
        return None;
    }
    // The original key and the channels tried so far.
    let mut parts = dead.dedupe_key.split('>');
    let base_key = parts.next().unwrap_or("").to_owned();
    let mut tried: Vec<Fallback> = parts.filter_map(parse).collect();
    let failed = Fallback::of(dead.channel);
    tried.push(failed);
    let office = |kind: Kind| NewOutbox {
        ticket_id: dead.ticket_id,
        kind,
        dedupe_key: format!("{}:{base_key}", dead.kind),
        recipient: Recipient::Office,
        channel: Channel::Email,
        address: Address::Email(office_email.clone()),
        language: Lang::It,
        payload: with(
            &dead.payload,
            json!({
                "undelivered_kind": dead.kind.as_str(),
                "failed_channel": dead.channel.as_str(),
                "failure": error,
            }),
        ),
        not_before: now,
    };
    if held {
        return Some(office(Kind::EsitoIncerto));
    }
    let start = match chain.iter().position(|f| *f == failed) {
        Some(i) => i + 1,
        // A channel outside the chain goes straight to the office, when the chain has it.
        None => chain.iter().position(|f| *f == Fallback::Office)?,
    };
    for link in &chain[start..] {
        if *link == Fallback::Office {
            return Some(office(Kind::CittadinoIrraggiungibile));
        }
        if tried.contains(link) {
            continue;
        }
        let Some(channel) = link.channel() else {
            continue;
        };
        let Some(address) = citizen.reach(channel) else {
            continue;
        };
        if citizen.opted_out(channel) {
            continue;
        }
        let mut key = dead.dedupe_key.clone();
        key.push('>');
        key.push_str(dead.channel.as_str());
        return Some(NewOutbox {
            ticket_id: dead.ticket_id,
            kind: dead.kind,
            dedupe_key: key,
            recipient: Recipient::Citizen,
            channel,
            address,
            language: dead.language,
            payload: with(
                &dead.payload,
                json!({"fallback_from": dead.channel.as_str()}),
            ),
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

    const ERROR: &str = "sms: refused (BLACKLISTED)";

    fn dead(channel: &str, key: &str, payload: &Value) -> DeadRow {
        DeadRow {
            ticket_id: 7,
            kind: Kind::Ricevuta,
            dedupe_key: key.to_owned(),
            recipient: Recipient::Citizen,
            channel: Channel::parse(channel).expect("a channel"),
            language: Lang::It,
            payload: payload.clone(),
        }
    }

    fn office() -> EmailAddress {
        EmailAddress::parse("u@c.it").expect("an address")
    }

    #[test]
    fn sms_falls_back_to_email_then_office() {
        let p = json!({"number": "2026/1"});
        let citizen = c(json!({"mobile": "+393471234567", "email": "a@b.it"}));
        let r = replacement(
            &dead("sms", "e1", &p),
            ERROR,
            &citizen,
            &CHAIN,
            &office(),
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
            ERROR,
            &citizen,
            &CHAIN,
            &office(),
            false,
            NOW,
        )
        .expect("the office is told");
        assert_eq!(r2.kind, Kind::CittadinoIrraggiungibile);
        assert_eq!(r2.dedupe_key, "ricevuta:e1");
        assert_eq!(r2.recipient, Recipient::Office);
        assert_eq!(r2.payload["failure"], "sms: refused (BLACKLISTED)");
    }

    #[test]
    fn skips_channels_without_address_or_consent_and_never_repeats() {
        let p = json!({});
        let no_email = c(json!({"mobile": "+393471234567"}));
        let r = replacement(
            &dead("sms", "k", &p),
            ERROR,
            &no_email,
            &CHAIN,
            &office(),
            false,
            NOW,
        )
        .expect("office");
        assert_eq!(r.kind, Kind::CittadinoIrraggiungibile);
        let opted = c(json!({"mobile": "+393471234567", "email": "a@b.it", "opt_out": ["email"]}));
        let r = replacement(
            &dead("sms", "k", &p),
            ERROR,
            &opted,
            &CHAIN,
            &office(),
            false,
            NOW,
        )
        .expect("office");
        assert_eq!(r.recipient, Recipient::Office);
        // A chain email → sms → office: an e-mail that was itself a fallback from SMS does not
        // go back to SMS.
        let chain = [Fallback::Email, Fallback::Sms, Fallback::Office];
        let both = c(json!({"mobile": "+393471234567", "email": "a@b.it"}));
        let r = replacement(
            &dead("email", "k>sms", &p),
            ERROR,
            &both,
            &chain,
            &office(),
            false,
            NOW,
        )
        .expect("office");
        assert_eq!(r.recipient, Recipient::Office);
        // Staff messages never fall back; a chain without office ends quietly.
        let mut staff = dead("email", "k", &p);
        staff.recipient = Recipient::Office;
        assert!(replacement(&staff, ERROR, &both, &CHAIN, &office(), false, NOW).is_none());
        assert!(
            replacement(
                &dead("email", "k", &p),
                ERROR,
                &both,
                &[Fallback::Sms, Fallback::Email],
                &office(),
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
        let r = replacement(
            &dead("sms", "k", &p),
            ERROR,
            &both,
            &CHAIN,
            &office(),
            true,
            NOW,
        )
        .expect("office");
        assert_eq!(
            (r.kind, r.dedupe_key.as_str()),
            (Kind::EsitoIncerto, "ricevuta:k")
        );
    }
}
