//! What an outbox row is: its kind, who it is for (and so which templates it reads), and where it
//! goes. Each has one stored name; parsing it is the only way to get a value.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::fiscal::FiscalCodeError;
use super::{Channel, EmailAddress, EmailError, FiscalCode, NumberError, PhoneNumber, UnknownName};

/// The kinds of message, each with its own template (but [`Kind::Prova`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Receipt: ticket number, expected closure, how to follow and reply.
    Ricevuta,
    /// A processing step.
    Avanzamento,
    /// What is missing; the term is suspended.
    RichiestaIntegrazione,
    /// Reminder of a pending integration request.
    SollecitoIntegrazione,
    /// To the office: a suspension passed its cap.
    SospensioneScaduta,
    /// The integration arrived; the clock resumed.
    Ripresa,
    /// To the office: the deadline is near.
    PreavvisoScadenza,
    /// The term was violated.
    Violazione,
    /// The ticket was closed.
    Chiusura,
    /// The expected date of closure moved (priority, category, reopening, new calendar, a date
    /// the office set): the old and the new date and why.
    CambioData,
    /// The last warning before a ticket waiting for an integrazione is closed automatically.
    UltimoAvviso,
    /// To the office: a citizen notice had no channel to go through (the engine, or the
    /// fallback chain at its end).
    CittadinoIrraggiungibile,
    /// To the office: a citizen message whose fate is unknown was held (the fallback chain).
    EsitoIncerto,
    /// A reply that names no ticket: to the office, and to the citizen how to quote the number.
    RispostaNonAbbinata,
    /// To the office: an e-mail reply from a sender that did not authenticate.
    RispostaNonAutenticata,
    /// To the office: a reply naming a ticket, from an address not on file.
    RispostaMittenteDiverso,
    /// To the office: a call to the voice line.
    ChiamataRicevuta,
    /// To the citizen: SMS turned off (the opt-out keyword).
    RevocaSms,
    /// To the citizen: SMS turned on again.
    RiattivazioneSms,
    /// To the citizen: the state of a request, answering their `STATO` SMS (a verified sender).
    RispostaStato,
    /// To the citizen: general information and how to get the access code, answering a `STATO`
    /// SMS that did not verify (the same words whether the request exists or not).
    RispostaInfo,
    /// To the citizen: the SMS keywords, answering `AIUTO`/`HELP`.
    AiutoSms,
    /// To the citizen: an on-site appointment booked (with a calendar file by e-mail).
    Appuntamento,
    /// To the citizen: the appointment moved.
    AppuntamentoModificato,
    /// To the citizen: the appointment cancelled.
    AppuntamentoAnnullato,
    /// To the citizen: they missed the appointment, and how to book again.
    AppuntamentoMancato,
    /// To the citizen: the appointment is on the next working day.
    PromemoriaAppuntamento,
    /// An admin's test message (the template editor's test send, `messo send-test`): its words
    /// come with it, there is no template.
    Prova,
    /// To the office and the supervisor: the monthly compliance report (table, criticalities,
    /// a CSV attached). Rendered by the reports layer and stored with the row: no template.
    RapportoMensile,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 29] = [
        Kind::Ricevuta,
        Kind::Avanzamento,
        Kind::RichiestaIntegrazione,
        Kind::SollecitoIntegrazione,
        Kind::SospensioneScaduta,
        Kind::Ripresa,
        Kind::PreavvisoScadenza,
        Kind::Violazione,
        Kind::Chiusura,
        Kind::CambioData,
        Kind::UltimoAvviso,
        Kind::CittadinoIrraggiungibile,
        Kind::EsitoIncerto,
        Kind::RispostaNonAbbinata,
        Kind::RispostaNonAutenticata,
        Kind::RispostaMittenteDiverso,
        Kind::ChiamataRicevuta,
        Kind::RevocaSms,
        Kind::RiattivazioneSms,
        Kind::RispostaStato,
        Kind::RispostaInfo,
        Kind::AiutoSms,
        Kind::Appuntamento,
        Kind::AppuntamentoModificato,
        Kind::AppuntamentoAnnullato,
        Kind::AppuntamentoMancato,
        Kind::PromemoriaAppuntamento,
        Kind::Prova,
        Kind::RapportoMensile,
    ];

    /// The stored name, which is also the template's.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Ricevuta => "ricevuta",
            Kind::Avanzamento => "avanzamento",
            Kind::RichiestaIntegrazione => "richiesta_integrazione",
            Kind::SollecitoIntegrazione => "sollecito_integrazione",
            Kind::SospensioneScaduta => "sospensione_scaduta",
            Kind::Ripresa => "ripresa",
            Kind::PreavvisoScadenza => "preavviso_scadenza",
            Kind::Violazione => "violazione",
            Kind::Chiusura => "chiusura",
            Kind::CambioData => "cambio_data",
            Kind::UltimoAvviso => "ultimo_avviso",
            Kind::CittadinoIrraggiungibile => "cittadino_irraggiungibile",
            Kind::EsitoIncerto => "esito_incerto",
            Kind::RispostaNonAbbinata => "risposta_non_abbinata",
            Kind::RispostaNonAutenticata => "risposta_non_autenticata",
            Kind::RispostaMittenteDiverso => "risposta_mittente_diverso",
            Kind::ChiamataRicevuta => "chiamata_ricevuta",
            Kind::RevocaSms => "revoca_sms",
            Kind::RiattivazioneSms => "riattivazione_sms",
            Kind::RispostaStato => "risposta_stato",
            Kind::RispostaInfo => "risposta_info",
            Kind::AiutoSms => "aiuto_sms",
            Kind::Appuntamento => "appuntamento",
            Kind::AppuntamentoModificato => "appuntamento_modificato",
            Kind::AppuntamentoAnnullato => "appuntamento_annullato",
            Kind::AppuntamentoMancato => "appuntamento_mancato",
            Kind::PromemoriaAppuntamento => "promemoria_appuntamento",
            Kind::Prova => "prova",
            Kind::RapportoMensile => "rapporto_mensile",
        }
    }

    /// The kind of a stored name.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// A direct answer to the citizen's own SMS (the SMS answering): sent at once at any hour,
    /// by SMS only — it never falls back to another channel.
    pub const fn is_sms_answer(self) -> bool {
        matches!(
            self,
            Kind::RispostaStato | Kind::RispostaInfo | Kind::AiutoSms
        )
    }

    /// Whether its words come from a template (all but the admins' test messages and the
    /// monthly report, whose words are stored with the row when it is queued).
    pub const fn has_template(self) -> bool {
        !matches!(self, Kind::Prova | Kind::RapportoMensile)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Recipient {
    Citizen,
    Office,
    Supervisor,
    /// Whoever an admin's test message is sent to.
    Tester,
}

impl Recipient {
    /// Every recipient.
    pub const ALL: [Recipient; 4] = [
        Recipient::Citizen,
        Recipient::Office,
        Recipient::Supervisor,
        Recipient::Tester,
    ];

    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Recipient::Citizen => "citizen",
            Recipient::Office => "office",
            Recipient::Supervisor => "supervisor",
            Recipient::Tester => "test",
        }
    }

    /// The recipient of a stored name.
    pub fn parse(s: &str) -> Option<Recipient> {
        Recipient::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whose templates its messages read: the citizen's, or the office's (everyone else).
    pub const fn audience(self) -> Audience {
        match self {
            Recipient::Citizen => Audience::Cittadino,
            Recipient::Office | Recipient::Supervisor | Recipient::Tester => Audience::Ufficio,
        }
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who reads a template: the citizen, or the office's staff. A message's audience is its
/// [`Recipient::audience`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Audience {
    Cittadino,
    Ufficio,
    /// What the telephone answering backup says: each template's `text` is spoken (plain
    /// text), its `subject` is the prompt's title in the console.
    Telefono,
}

impl Audience {
    /// The name in template paths and the admin API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Audience::Cittadino => "cittadino",
            Audience::Ufficio => "ufficio",
            Audience::Telefono => "telefono",
        }
    }
}

impl std::str::FromStr for Audience {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cittadino" => Ok(Audience::Cittadino),
            "ufficio" => Ok(Audience::Ufficio),
            "telefono" => Ok(Audience::Telefono),
            _ => Err(UnknownName {
                what: "audience",
                found: s.to_owned(),
                expected: "cittadino|ufficio|telefono",
            }),
        }
    }
}

/// Where a message goes: an e-mail address (e-mail and PEC), a phone number (SMS, calls) or a
/// codice fiscale (the app IO).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Address {
    Email(EmailAddress),
    Phone(PhoneNumber),
    Fiscal(FiscalCode),
}

/// Why a text is not an address on its channel. The messages never repeat the address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("is not an e-mail address we can send to: it {0}")]
    Email(EmailError),
    #[error("is not a phone number: {0}")]
    Phone(NumberError),
    #[error("{0}")]
    Fiscal(FiscalCodeError),
}

impl Address {
    /// The address `text` as `channel` takes it: an e-mail address for e-mail and PEC (exactly
    /// as given), a phone number for SMS (normalised to E.164).
    pub fn parse(channel: Channel, text: &str) -> Result<Address, AddressError> {
        match channel {
            Channel::Email | Channel::Pec => EmailAddress::parse(text)
                .map(Address::Email)
                .map_err(AddressError::Email),
            Channel::Sms | Channel::Voice => PhoneNumber::parse(text)
                .map(Address::Phone)
                .map_err(AddressError::Phone),
            Channel::Io => FiscalCode::parse(text)
                .map(Address::Fiscal)
                .map_err(AddressError::Fiscal),
        }
    }

    /// The stored text.
    pub fn as_str(&self) -> &str {
        match self {
            Address::Email(e) => e.as_str(),
            Address::Phone(p) => p.as_str(),
            Address::Fiscal(c) => c.as_str(),
        }
    }

    /// Whether `channel` can take it (an e-mail address for e-mail and PEC, a number for SMS).
    pub fn fits(&self, channel: Channel) -> bool {
        matches!(
            (self, channel),
            (Address::Email(_), Channel::Email | Channel::Pec)
                | (Address::Phone(_), Channel::Sms | Channel::Voice)
                | (Address::Fiscal(_), Channel::Io)
        )
    }
}

impl From<EmailAddress> for Address {
    fn from(e: EmailAddress) -> Address {
        Address::Email(e)
    }
}

impl From<PhoneNumber> for Address {
    fn from(p: PhoneNumber) -> Address {
        Address::Phone(p)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for Address {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        for r in Recipient::ALL {
            assert_eq!(Recipient::parse(r.as_str()), Some(r));
        }
        for a in [Audience::Cittadino, Audience::Ufficio] {
            assert_eq!(a.as_str().parse::<Audience>(), Ok(a));
        }
        assert_eq!(Kind::parse("Ricevuta"), None);
        assert_eq!(Recipient::parse("citizens"), None);
        assert!("staff".parse::<Audience>().is_err());
    }

    #[test]
    fn only_the_citizen_reads_the_citizens_templates() {
        assert_eq!(Recipient::Citizen.audience(), Audience::Cittadino);
        for r in [Recipient::Office, Recipient::Supervisor, Recipient::Tester] {
            assert_eq!(r.audience(), Audience::Ufficio);
        }
    }

    #[test]
    fn an_address_is_of_its_channels_kind() {
        let e = Address::parse(Channel::Pec, "a@pec.example.it").expect("an address");
        assert!(e.fits(Channel::Email) && e.fits(Channel::Pec) && !e.fits(Channel::Sms));
        let p = Address::parse(Channel::Sms, "347 123 4567").expect("a number");
        assert_eq!(p.as_str(), "+393471234567");
        assert!(p.fits(Channel::Sms) && !p.fits(Channel::Email));
        assert!(matches!(
            Address::parse(Channel::Email, "+393471234567"),
            Err(AddressError::Email(_))
        ));
        assert!(matches!(
            Address::parse(Channel::Sms, "a@b.it"),
            Err(AddressError::Phone(_))
        ));
    }
}
