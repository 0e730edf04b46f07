//! The codice fiscale: how the app IO and the national index of digital domiciles (INAD) know a
//! citizen. Parsing it is the only way to get one.

use std::fmt;

/// An Italian person's codice fiscale: 16 characters in its pattern (omocodia letters allowed in
/// the digit places) with a correct check character, upper-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FiscalCode(String);

/// Why a text is not a codice fiscale. The message never repeats the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("is not a valid codice fiscale (16 characters with a correct check letter)")]
pub struct FiscalCodeError;

impl FiscalCode {
    /// Checks `s` (spaces around and lower case accepted).
    pub fn parse(s: &str) -> Result<FiscalCode, FiscalCodeError> {
        let cf = s.trim().to_ascii_uppercase();
        let b = cf.as_bytes();
        if b.len() != 16 {
            return Err(FiscalCodeError);
        }
        const OMOCODIA: &[u8] = b"LMNPQRSTUV";
        let digit_like = |c: u8| c.is_ascii_digit() || OMOCODIA.contains(&c);
        let letters = [0, 1, 2, 3, 4, 5, 8, 11, 15];
        let digits = [6, 7, 9, 10, 12, 13, 14];
        if !letters.iter().all(|&i| b[i].is_ascii_uppercase())
            || !digits.iter().all(|&i| digit_like(b[i]))
        {
            return Err(FiscalCodeError);
        }
        const ODD: [u32; 26] = [
            1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25,
            24, 23,
        ];
        let mut sum = 0u32;
        for (i, &c) in b[..15].iter().enumerate() {
            let v = if c.is_ascii_digit() {
                u32::from(c - b'0')
            } else {
                u32::from(c - b'A')
            };
            // Positions are counted from 1: odd positions use the table.
            sum += if i % 2 == 0 { ODD[v as usize] } else { v };
        }
        let check = b'A' + (sum % 26) as u8;
        if b[15] == check {
            Ok(FiscalCode(cf))
        } else {
            Err(FiscalCodeError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FiscalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_checked_and_upper_cased() {
        assert_eq!(
            FiscalCode::parse(" rssmra85t10a562s ").map(|c| c.to_string()),
            Ok("RSSMRA85T10A562S".to_owned())
        );
        assert_eq!(FiscalCode::parse("RSSMRA85T10A562T"), Err(FiscalCodeError));
        assert_eq!(FiscalCode::parse("RSSMRA85T10A562"), Err(FiscalCodeError));
        assert_eq!(FiscalCode::parse("1SSMRA85T10A562S"), Err(FiscalCodeError));
    }
}
