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
    /// An automated call that speaks the notice ([`VOICE_KINDS`] only, after SMS and e-mail).
    Voice,
    /// The app IO: first for a citizen with a codice fiscale when `[io]` is on (see
    /// [`super::route`]); when it fails, the citizen's own written route comes next.
    Io,
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
            Fallback::Voice => Some(Channel::Voice),
            Fallback::Io => Some(Channel::Io),
            Fallback::Office => None,
        }
    }

    /// The link of `channel`.
    pub const fn of(channel: Channel) -> Fallback {
        match channel {
            Channel::Email => Fallback::Email,
            Channel::Sms => Fallback::Sms,
            Channel::Pec => Fallback::Pec,
            Channel::Voice => Fallback::Voice,
            Channel::Io => Fallback::Io,
        }
    }
}

/// The notices a call may speak when every written channel failed: the breach notice and the
/// integration request (issue 19, point 5). Every other kind skips the `voice` link.
pub const VOICE_KINDS: [Kind; 2] = [Kind::Violazione, Kind::RichiestaIntegrazione];

/// Whether the `voice` link may call for a notice of `kind` whose chain has tried `tried`: only
/// for [`VOICE_KINDS`], only once SMS was tried (a call goes to the same mobile), and only once
/// e-mail was tried too when the citizen has an address for it and did not opt out of it.
pub fn voice_may_call(kind: Kind, tried: &[Fallback], citizen: &Citizen) -> bool {
    let email_owed = citizen.reach(Channel::Email).is_some() && !citizen.opted_out(Channel::Email);
    VOICE_KINDS.contains(&kind)
        && tried.contains(&Fallback::Sms)
        && (!email_owed || tried.contains(&Fallback::Email))
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
    // Staff messages, and the direct answers to a citizen's SMS (which only make sense by SMS),
    // never fall back.
    if dead.recipient != Recipient::Citizen || dead.kind.is_sms_answer() {
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
    let written = |channel: Channel, address: Address| {
        let mut key = dead.dedupe_key.clone();
        key.push('>');
        key.push_str(dead.channel.as_str());
        NewOutbox {
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
        }
    };
    // IO failed (off for this service, no profile, refused): the citizen's own written route
    // comes next (the preferred channel first), then the chain from there.
    if failed == Fallback::Io
        && let Some((channel, address)) = citizen.route()
        && !tried.contains(&Fallback::of(channel))
    {
        return Some(written(channel, address));
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
        if *link == Fallback::Voice && !voice_may_call(dead.kind, &tried, citizen) {
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
        return Some(written(channel, address));
    }
    None
}

/// A citizen's message of a ticket, as a correction of the citizen's contacts sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub id: i64,
    pub kind: Kind,
    pub dedupe_key: String,
    /// `pending`, `retry`, `sending`, `delivered`, `dead` or `uncertain`.
    pub state: String,
    /// A person already handled it from the console (a contact made, an earlier correction).
    pub resolved: bool,
    pub language: Lang,
    pub payload: Value,
}

/// A message queued again after a correction of the citizen's contacts, and the dead messages
/// it stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct Redirected {
    pub row: NewOutbox,
    pub replaces: Vec<i64>,
}

/// The notice a dedupe key belongs to: the key before the fallback chain (`>sms`) and earlier
/// corrections (`~c12`) added to it.
pub fn base_key(key: &str) -> &str {
    key.split(['>', '~']).next().unwrap_or(key)
}

/// What a correction of the citizen's contacts (event `event_id`, giving addresses on
/// `changed`) owes again: every notice of the ticket that never arrived (all its messages dead,
/// at least one not yet handled) goes once more, as a new row to the first corrected channel on
/// the citizen's route (the preferred channel first) that the citizen did not opt out of, keyed
/// `<notice>~c<event_id>` so the unique key keeps it to one. A reminder of an integrazione goes
/// again only while the ticket still waits. SMS go at `sms_not_before` (the SMS window).
#[allow(clippy::too_many_arguments)]
pub fn redirect(
    notices: &[Notice],
    citizen: &Citizen,
    changed: &[Channel],
    event_id: i64,
    ticket_id: i64,
    waiting: bool,
    sms_not_before: Timestamp,
    now: Timestamp,
) -> Vec<Redirected> {
    let mut order = vec![citizen.preferred_channel];
    for c in [Channel::Email, Channel::Pec, Channel::Sms] {
        if !order.contains(&c) {
            order.push(c);
        }
    }
    let Some((channel, address)) = order
        .into_iter()
        .filter(|c| changed.contains(c) && !citizen.opted_out(*c))
        .find_map(|c| citizen.reach(c).map(|a| (c, a)))
    else {
        return Vec::new();
    };
    // The notices in the order they were first owed.
    let mut groups: Vec<(Kind, &str, Vec<&Notice>)> = Vec::new();
    for n in notices {
        let base = base_key(&n.dedupe_key);
        match groups
            .iter_mut()
            .find(|(k, b, _)| *k == n.kind && *b == base)
        {
            Some((_, _, list)) => list.push(n),
            None => groups.push((n.kind, base, vec![n])),
        }
    }
    let mut out = Vec::new();
    for (kind, base, list) in groups {
        let never_arrived = list.iter().all(|n| n.state == "dead");
        let open: Vec<i64> = list.iter().filter(|n| !n.resolved).map(|n| n.id).collect();
        if !never_arrived || open.is_empty() {
            continue;
        }
        if kind == Kind::SollecitoIntegrazione && !waiting {
            continue;
        }
        let Some(last) = list.iter().max_by_key(|n| n.id) else {
            continue;
        };
        let mut payload = last.payload.clone();
        if let Value::Object(m) = &mut payload {
            m.remove("fallback_from");
        }
        out.push(Redirected {
            row: NewOutbox {
                ticket_id,
                kind,
                dedupe_key: format!("{base}~c{event_id}"),
                recipient: Recipient::Citizen,
                channel,
                address: address.clone(),
                language: last.language,
                payload,
                not_before: if channel == Channel::Sms {
                    sms_not_before
                } else {
                    now
                },
            },
            replaces: open,
        });
    }
    out
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
    fn an_answer_to_the_citizens_own_sms_never_falls_back() {
        let citizen = c(json!({"mobile": "+393471234567", "email": "a@b.it"}));
        for kind in [Kind::RispostaStato, Kind::RispostaInfo, Kind::AiutoSms] {
            let d = DeadRow {
                kind,
                ..dead("sms", "sms-answer:9", &json!({"number": "2026/1"}))
            };
            for held in [false, true] {
                assert_eq!(
                    replacement(&d, ERROR, &citizen, &CHAIN, &office(), held, NOW),
                    None,
                    "{kind} held={held}"
                );
            }
        }
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

    fn notice(id: i64, kind: Kind, key: &str, state: &str) -> Notice {
        Notice {
            id,
            kind,
            dedupe_key: key.to_owned(),
            state: state.to_owned(),
            resolved: false,
            language: Lang::It,
            payload: json!({"number": "2026/1", "fallback_from": "sms"}),
        }
    }

    #[test]
    fn a_correction_sends_again_only_what_never_arrived() {
        let citizen = c(json!({"mobile": "+393471234567", "email": "nuovo@b.it",
                               "preferred_channel": "sms"}));
        let notices = [
            // The receipt died on SMS and on e-mail: it goes again.
            notice(1, Kind::Ricevuta, "receipt", "dead"),
            notice(2, Kind::Ricevuta, "receipt>sms", "dead"),
            // A step died on SMS, then arrived by e-mail: nothing.
            notice(3, Kind::Avanzamento, "11", "dead"),
            notice(4, Kind::Avanzamento, "11>sms", "delivered"),
            // Still on its way: nothing.
            notice(5, Kind::Chiusura, "12", "retry"),
            // A reminder of a wait that ended: nothing.
            notice(6, Kind::SollecitoIntegrazione, "9:1", "dead"),
        ];
        let out = redirect(
            &notices,
            &citizen,
            &[Channel::Email],
            40,
            7,
            false,
            NOW.plus(3600),
            NOW,
        );
        assert_eq!(out.len(), 1, "{out:?}");
        let r = &out[0];
        assert_eq!(r.replaces, vec![1, 2]);
        assert_eq!(r.row.dedupe_key, "receipt~c40");
        assert_eq!(r.row.kind, Kind::Ricevuta);
        // The corrected channel, not the preferred SMS that died.
        assert_eq!(
            (r.row.channel, r.row.address.as_str()),
            (Channel::Email, "nuovo@b.it")
        );
        assert_eq!(r.row.not_before, NOW);
        assert!(r.row.payload.get("fallback_from").is_none());
        // Already handled from the console: nothing. A corrected mobile goes in the SMS window.
        let mut handled = notices.clone();
        handled[0].resolved = true;
        handled[1].resolved = true;
        assert!(
            redirect(
                &handled,
                &citizen,
                &[Channel::Email],
                40,
                7,
                false,
                NOW,
                NOW
            )
            .is_empty()
        );
        let sms = redirect(
            &notices,
            &citizen,
            &[Channel::Sms],
            41,
            7,
            true,
            NOW.plus(60),
            NOW,
        );
        assert_eq!(sms.len(), 2, "the reminder goes while the ticket waits");
        assert_eq!(sms[0].row.not_before, NOW.plus(60));
        assert_eq!(base_key("receipt~c40>email"), "receipt");
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

    #[test]
    fn a_call_only_for_breach_and_integration_after_sms_and_email() {
        let chain = [
            Fallback::Sms,
            Fallback::Email,
            Fallback::Voice,
            Fallback::Office,
        ];
        let p = json!({"number": "2026/1"});
        let both = c(json!({"mobile": "+393471234567", "email": "a@b.it"}));
        let of = |kind: Kind, channel: &str, key: &str, citizen: &Citizen| {
            let mut d = dead(channel, key, &p);
            d.kind = kind;
            replacement(&d, ERROR, citizen, &chain, &office(), false, NOW)
                .map(|r| (r.channel.as_str(), r.kind, r.dedupe_key))
        };
        // SMS failed, e-mail not yet tried: e-mail first, no call.
        assert_eq!(
            of(Kind::Violazione, "sms", "v1", &both),
            Some(("email", Kind::Violazione, "v1>sms".to_owned()))
        );
        // Both failed: one call, keyed on the notice and the channels tried.
        assert_eq!(
            of(Kind::Violazione, "email", "v1>sms", &both),
            Some(("voice", Kind::Violazione, "v1>sms>email".to_owned()))
        );
        assert_eq!(
            of(Kind::RichiestaIntegrazione, "email", "r1>sms", &both),
            Some((
                "voice",
                Kind::RichiestaIntegrazione,
                "r1>sms>email".to_owned()
            ))
        );
        // The call failed too: the office, never a second call.
        assert_eq!(
            of(Kind::Violazione, "voice", "v1>sms>email", &both),
            Some((
                "email",
                Kind::CittadinoIrraggiungibile,
                "violazione:v1".to_owned()
            ))
        );
        // Another kind never calls.
        assert_eq!(
            of(Kind::Ricevuta, "email", "k1>sms", &both).map(|r| r.1),
            Some(Kind::CittadinoIrraggiungibile)
        );
        // An e-mail that failed first goes on down the chain: SMS was never tried, no call.
        assert_eq!(
            of(Kind::Violazione, "email", "v2", &both).map(|r| r.1),
            Some(Kind::CittadinoIrraggiungibile)
        );
        // No SMS tried (no mobile, or opted out): no call.
        let mail_only = c(json!({"email": "a@b.it"}));
        assert_eq!(
            of(Kind::Violazione, "email", "v3", &mail_only).map(|r| r.1),
            Some(Kind::CittadinoIrraggiungibile)
        );
        let opted = c(json!({"mobile": "+393471234567", "email": "a@b.it", "opt_out": ["sms"]}));
        assert_eq!(
            of(Kind::Violazione, "email", "v4", &opted).map(|r| r.1),
            Some(Kind::CittadinoIrraggiungibile)
        );
        // A mobile only: the call right after the SMS.
        let mobile = c(json!({"mobile": "+393471234567"}));
        assert_eq!(
            of(Kind::Violazione, "sms", "v5", &mobile).map(|r| r.0),
            Some("voice")
        );
    }
}
