//! Parsed, valid values the rest of Messo passes around. Parse once at the edge, then trust the type.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub mod email;
pub mod fiscal;
pub mod notice;
pub mod phone;
pub use email::{EmailAddress, EmailError};
pub use fiscal::FiscalCode;
pub use notice::{Address, AddressError, Audience, Kind, Recipient};
pub use phone::{NumberError, PhoneNumber};

/// How urgent a ticket is, as the CRM classifies it (service agreement, section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    Urgente,
    Alta,
    Normale,
    Bassa,
}

impl Priority {
    /// Every priority, most urgent first.
    pub const ALL: [Priority; 4] = [
        Priority::Urgente,
        Priority::Alta,
        Priority::Normale,
        Priority::Bassa,
    ];

    /// The wire name: `urgente`, `alta`, `normale`, `bassa`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::Urgente => "urgente",
            Priority::Alta => "alta",
            Priority::Normale => "normale",
            Priority::Bassa => "bassa",
        }
    }

    /// Position in [`Priority::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Name in English, for `--lang en`.
    pub const fn english(self) -> &'static str {
        match self {
            Priority::Urgente => "urgent",
            Priority::Alta => "high",
            Priority::Normale => "normal",
            Priority::Bassa => "low",
        }
    }
}

/// The kind of request. `albo_pretorio` is its own category so that its target and wording can
/// differ; `in_loco` is on-site assistance, measured in calendar days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Generale,
    AlboPretorio,
    InLoco,
}

impl Category {
    /// Every category.
    pub const ALL: [Category; 3] = [Category::Generale, Category::AlboPretorio, Category::InLoco];

    /// The wire name: `generale`, `albo_pretorio`, `in_loco`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Category::Generale => "generale",
            Category::AlboPretorio => "albo_pretorio",
            Category::InLoco => "in_loco",
        }
    }

    /// Position in [`Category::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Italian name for people.
    pub const fn italian(self) -> &'static str {
        match self {
            Category::Generale => "generale",
            Category::AlboPretorio => "Albo Pretorio",
            Category::InLoco => "assistenza in loco",
        }
    }

    /// English name for people.
    pub const fn english(self) -> &'static str {
        match self {
            Category::Generale => "general",
            Category::AlboPretorio => "Albo Pretorio (official notice board)",
            Category::InLoco => "on-site assistance",
        }
    }
}

/// A value that is not one of the names a field accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {found:?}; expected {expected}")]
pub struct UnknownName {
    pub what: &'static str,
    pub found: String,
    pub expected: &'static str,
}

impl FromStr for Priority {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Priority::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "priority",
                found: s.to_owned(),
                expected: "urgente|alta|normale|bassa",
            })
    }
}

impl FromStr for Category {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "category",
                found: s.to_owned(),
                expected: "generale|albo_pretorio|in_loco",
            })
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Priority {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl<'de> serde::Deserialize<'de> for Category {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Priority {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl serde::Serialize for Category {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Output language of texts meant for people.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    It,
    En,
}

impl Lang {
    /// The stored name: `it`, `en`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Lang::It => "it",
            Lang::En => "en",
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Lang {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "it" => Ok(Lang::It),
            "en" => Ok(Lang::En),
            _ => Err(UnknownName {
                what: "language",
                found: s.to_owned(),
                expected: "it|en",
            }),
        }
    }
}

/// A channel a message can go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Sms,
    /// Certified e-mail (posta elettronica certificata).
    Pec,
    /// An automated call that speaks the notice: the last try of the fallback chain for a
    /// breach notice or an integration request, after every written channel failed.
    Voice,
    /// A message in the public services app IO (PagoPA), addressed by codice fiscale.
    Io,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 5] = [
        Channel::Email,
        Channel::Sms,
        Channel::Pec,
        Channel::Voice,
        Channel::Io,
    ];

    /// The stored and configured name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Pec => "pec",
            Channel::Voice => "voice",
            Channel::Io => "io",
        }
    }

    /// The channel of a stored or configured name.
    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a request reached the office (the "canale di ricezione" of the reports), as the CRM
/// says it. Optional on a ticket: reports group the tickets without it as `not_given`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceivedVia {
    /// At the desk (sportello).
    Desk,
    Phone,
    Email,
    Pec,
    /// A web form or the municipality's portal.
    Web,
    Sms,
    /// Paper mail.
    Post,
}

impl ReceivedVia {
    /// Every channel of receipt.
    pub const ALL: [ReceivedVia; 7] = [
        ReceivedVia::Desk,
        ReceivedVia::Phone,
        ReceivedVia::Email,
        ReceivedVia::Pec,
        ReceivedVia::Web,
        ReceivedVia::Sms,
        ReceivedVia::Post,
    ];

    /// The wire name: `desk`, `phone`, `email`, `pec`, `web`, `sms`, `post`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReceivedVia::Desk => "desk",
            ReceivedVia::Phone => "phone",
            ReceivedVia::Email => "email",
            ReceivedVia::Pec => "pec",
            ReceivedVia::Web => "web",
            ReceivedVia::Sms => "sms",
            ReceivedVia::Post => "post",
        }
    }

    /// Italian name for people.
    pub const fn italian(self) -> &'static str {
        match self {
            ReceivedVia::Desk => "sportello",
            ReceivedVia::Phone => "telefono",
            ReceivedVia::Email => "e-mail",
            ReceivedVia::Pec => "PEC",
            ReceivedVia::Web => "web",
            ReceivedVia::Sms => "SMS",
            ReceivedVia::Post => "posta",
        }
    }
}

impl FromStr for ReceivedVia {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReceivedVia::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "channel of receipt",
                found: s.to_owned(),
                expected: "desk|phone|email|pec|web|sms|post",
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_nothing_else_parses() {
        for p in Priority::ALL {
            assert_eq!(p.as_str().parse::<Priority>(), Ok(p));
        }
        for c in Category::ALL {
            assert_eq!(c.as_str().parse::<Category>(), Ok(c));
        }
        let err = "Urgent".parse::<Priority>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown priority \"Urgent\"; expected urgente|alta|normale|bassa"
        );
        assert!("Urgente".parse::<Priority>().is_err());
        assert!(" alta".parse::<Priority>().is_err());
        assert!("albo-pretorio".parse::<Category>().is_err());
    }
}
