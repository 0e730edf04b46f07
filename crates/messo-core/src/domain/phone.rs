//! Phone numbers: anything a citizen or a CRM may write, to E.164 (Italy by default).

use phonenumber::{Mode, Type, country};

/// Why a number cannot receive an SMS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("not a phone number")]
    Unparsable,
    #[error("not a valid number for its country")]
    Invalid,
    #[error("a landline cannot receive SMS")]
    Landline,
    #[error("this kind of number cannot receive SMS")]
    NotMobile,
}

/// Normalises `text` to E.164. Italian forms (`347 123 4567`, `0039…`, `+39…`) are understood;
/// with `mobile_only`, landlines and other non-mobile numbers are refused with the reason.
pub fn normalize_number(text: &str, mobile_only: bool) -> Result<String, NumberError> {
    let cleaned: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')' | '/'))
        .collect();
    let cleaned = match cleaned.strip_prefix("00") {
        Some(rest) => format!("+{rest}"),
        None => cleaned,
    };
    let n =
        phonenumber::parse(Some(country::Id::IT), &cleaned).map_err(|_| NumberError::Unparsable)?;
    if !n.is_valid() {
        return Err(NumberError::Invalid);
    }
    let e164 = n.format().mode(Mode::E164).to_string();
    if mobile_only {
        match n.number_type(&phonenumber::metadata::DATABASE) {
            Type::Mobile | Type::FixedLineOrMobile => {}
            // Italian geographic numbers keep their leading 0 after +39.
            Type::FixedLine => return Err(NumberError::Landline),
            _ if e164.starts_with("+390") => return Err(NumberError::Landline),
            _ => return Err(NumberError::NotMobile),
        }
    }
    Ok(e164)
}

/// A phone number in E.164 (`+393471234567`): only [`PhoneNumber::parse`] and
/// [`PhoneNumber::parse_mobile`] make one, so a value of this type is always valid.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Any valid number (a landline can call the phone line).
    pub fn parse(text: &str) -> Result<PhoneNumber, NumberError> {
        normalize_number(text, false).map(PhoneNumber)
    }

    /// A number that can receive SMS.
    pub fn parse_mobile(text: &str) -> Result<PhoneNumber, NumberError> {
        normalize_number(text, true).map(PhoneNumber)
    }

    /// The E.164 text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn italian_forms_become_e164_and_landlines_are_not_mobile() {
        for text in ["347 123 4567", "0039 347 1234567", "+39 347-123-4567"] {
            assert_eq!(
                PhoneNumber::parse_mobile(text).map(|p| p.to_string()),
                Ok("+393471234567".to_owned()),
                "{text}"
            );
        }
        assert_eq!(
            PhoneNumber::parse("06 1234 5678").map(|p| p.as_str().to_owned()),
            Ok("+390612345678".to_owned())
        );
        assert_eq!(
            PhoneNumber::parse_mobile("06 1234 5678"),
            Err(NumberError::Landline)
        );
        assert_eq!(PhoneNumber::parse("ciao"), Err(NumberError::Unparsable));
    }
}
