//! Where a citizen's notice goes first. Pure.
//!
//! 1. A legally relevant notice ([`LEGAL_KINDS`]: the integration request, its reminders, the
//!    last warning and the closure) goes to the citizen's digital domicile when there is one (CAD art. 3-bis):
//!    the PEC address elected in INAD, looked up by codice fiscale; or, when
//!    `[domicile] office_record` is on, the PEC address the office holds for the citizen.
//! 2. Otherwise, with `[io]` on, a citizen with a codice fiscale who did not opt out of IO gets
//!    the notices of `[io] kinds` in the app IO first.
//! 3. Otherwise the citizen's written route: the preferred channel, then the others.
//!
//! When IO fails (the citizen turned the service off, has no profile, a refusal), the
//! fallback chain takes the written route of step 3 ([`super::fallback::replacement`]).

use crate::domain::{Address, Channel, Kind};
use crate::ticket::Citizen;

/// The notices with legal weight for the citizen: what the office asks and the decision that
/// ends the request. They go to the digital domicile when the citizen has one.
pub const LEGAL_KINDS: [Kind; 4] = [
    Kind::RichiestaIntegrazione,
    Kind::SollecitoIntegrazione,
    Kind::UltimoAvviso,
    Kind::Chiusura,
];

/// The notices the app IO can carry by default: every citizen notice about a ticket. The SMS
/// keyword answers and the SMS opt-out confirmations stay SMS (they answer an SMS); a reply
/// that matched no ticket goes back where it came from.
pub const IO_KINDS: [Kind; 9] = [
    Kind::Ricevuta,
    Kind::Avanzamento,
    Kind::RichiestaIntegrazione,
    Kind::SollecitoIntegrazione,
    Kind::UltimoAvviso,
    Kind::Ripresa,
    Kind::CambioData,
    Kind::Violazione,
    Kind::Chiusura,
];

/// How the office routes citizens' notices (`[io]`, `[domicile]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    /// The notices that go to IO first; empty when `[io]` is off.
    pub io_kinds: Vec<Kind>,
    /// The PEC address the office holds for a citizen counts as the digital domicile.
    pub office_record_is_domicile: bool,
}

impl Default for Routing {
    /// IO off; the office's PEC record is the domicile.
    fn default() -> Routing {
        Routing {
            io_kinds: Vec::new(),
            office_record_is_domicile: true,
        }
    }
}

/// The citizen's digital domicile: INAD's, else the office's record when it counts.
pub fn domicile(citizen: &Citizen, routing: &Routing) -> Option<Address> {
    let inad = citizen.domicile.as_deref();
    let office = citizen
        .pec
        .as_deref()
        .filter(|_| routing.office_record_is_domicile && !citizen.opted_out(Channel::Pec));
    Address::parse(Channel::Pec, inad.or(office)?).ok()
}

/// The first channel and address of a notice of `kind` to `citizen`, if any.
pub fn first(kind: Kind, citizen: &Citizen, routing: &Routing) -> Option<(Channel, Address)> {
    if LEGAL_KINDS.contains(&kind)
        && let Some(pec) = domicile(citizen, routing)
    {
        return Some((Channel::Pec, pec));
    }
    if routing.io_kinds.contains(&kind)
        && !citizen.opted_out(Channel::Io)
        && let Some(cf) = citizen.reach(Channel::Io)
    {
        return Some((Channel::Io, cf));
    }
    citizen.route()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn citizen() -> Citizen {
        Citizen {
            email: Some("anna@example.org".to_owned()),
            mobile: Some("+393471234567".to_owned()),
            fiscal_code: Some("RSSMRA85T10A562S".to_owned()),
            preferred_channel: Channel::Sms,
            ..Citizen::default()
        }
    }

    fn io_on() -> Routing {
        Routing {
            io_kinds: IO_KINDS.to_vec(),
            ..Routing::default()
        }
    }

    #[test]
    fn io_comes_first_for_a_citizen_with_a_fiscal_code() {
        let c = citizen();
        let (ch, a) = first(Kind::Ricevuta, &c, &io_on()).expect("a route");
        assert_eq!((ch, a.as_str()), (Channel::Io, "RSSMRA85T10A562S"));
        // Off, or no code, or opted out: the preferred channel.
        assert_eq!(
            first(Kind::Ricevuta, &c, &Routing::default()).map(|r| r.0),
            Some(Channel::Sms)
        );
        let mut no_cf = c.clone();
        no_cf.fiscal_code = None;
        assert_eq!(
            first(Kind::Ricevuta, &no_cf, &io_on()).map(|r| r.0),
            Some(Channel::Sms)
        );
        let mut out = c.clone();
        out.opt_out = vec![Channel::Io];
        assert_eq!(
            first(Kind::Ricevuta, &out, &io_on()).map(|r| r.0),
            Some(Channel::Sms)
        );
        // SMS answers never go to IO.
        assert_eq!(
            first(Kind::RispostaStato, &c, &io_on()).map(|r| r.0),
            Some(Channel::Sms)
        );
    }

    #[test]
    fn legal_notices_go_to_the_digital_domicile() {
        let mut c = citizen();
        c.domicile = Some("anna.rossi@pec.example.it".to_owned());
        for kind in LEGAL_KINDS {
            let (ch, a) = first(kind, &c, &io_on()).expect("a route");
            assert_eq!(
                (ch, a.as_str()),
                (Channel::Pec, "anna.rossi@pec.example.it")
            );
        }
        // Not the others: the receipt goes to IO.
        assert_eq!(
            first(Kind::Ricevuta, &c, &io_on()).map(|r| r.0),
            Some(Channel::Io)
        );
        // The office's record counts when configured so; INAD's wins over it.
        let mut office = citizen();
        office.pec = Some("anna@pec.comune.example.it".to_owned());
        let r = first(Kind::Chiusura, &office, &Routing::default()).expect("a route");
        assert_eq!(r.1.as_str(), "anna@pec.comune.example.it");
        let not_counted = Routing {
            office_record_is_domicile: false,
            ..Routing::default()
        };
        assert_eq!(
            first(Kind::Chiusura, &office, &not_counted).map(|r| r.0),
            Some(Channel::Sms)
        );
        office.domicile = Some("anna.rossi@pec.example.it".to_owned());
        let r = first(Kind::Chiusura, &office, &not_counted).expect("a route");
        assert_eq!(r.1.as_str(), "anna.rossi@pec.example.it");
    }
}
