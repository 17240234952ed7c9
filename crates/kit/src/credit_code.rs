//! 统一社会信用代码 — the unified social credit code of GB 32100-2015, which identifies institutions
//! (D20), employers and the units experts represent.

use std::fmt;

/// The 31 characters a credit code may use, in value order: digits and capitals without
/// I, O, S, V and Z.
const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Weights of positions 1 to 17: 3^(i-1) mod 31.
const WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/// A unified social credit code whose structure and check character are valid.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CreditCode(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditCodeError {
    #[error("must be 18 characters, found {0}")]
    Length(usize),
    #[error("character {position} ({found:?}) is not allowed there")]
    Character { position: usize, found: char },
    #[error("wrong check character: expected {expected}, found {found}")]
    CheckCharacter { expected: char, found: char },
}

impl CreditCode {
    /// Validates a code as typed: spaces and hyphens are dropped and letters upper-cased first.
    pub fn parse(input: &str) -> Result<Self, CreditCodeError> {
        let code: String =
            input.chars().filter(|c| !c.is_whitespace() && *c != '-').map(|c| c.to_ascii_uppercase()).collect();
        let chars: Vec<char> = code.chars().collect();
        if chars.len() != 18 {
            return Err(CreditCodeError::Length(chars.len()));
        }
        let mut values = [0u32; 18];
        for (i, &c) in chars.iter().enumerate() {
            let value = char_value(c).ok_or(CreditCodeError::Character { position: i + 1, found: c })?;
            // Positions 3 to 8 are the administrative-division code: digits only.
            if (2..8).contains(&i) && !c.is_ascii_digit() {
                return Err(CreditCodeError::Character { position: i + 1, found: c });
            }
            values[i] = value;
        }
        let expected = check_character(&values[..17]);
        if chars[17] != expected {
            return Err(CreditCodeError::CheckCharacter { expected, found: chars[17] });
        }
        Ok(Self(code))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CreditCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn char_value(c: char) -> Option<u32> {
    let byte = u8::try_from(c).ok()?;
    ALPHABET.iter().position(|&a| a == byte).and_then(|p| u32::try_from(p).ok())
}

/// C18 = 31 - (sum of Ci * Wi mod 31), where 31 becomes 0.
fn check_character(first17: &[u32]) -> char {
    let sum: u32 = first17.iter().zip(WEIGHTS).map(|(v, w)| v * w).sum();
    let value = (31 - sum % 31) % 31;
    char::from(ALPHABET[value as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standards_worked_example_is_valid() {
        assert_eq!(CreditCode::parse("91350100M000100Y43").unwrap().as_str(), "91350100M000100Y43");
    }

    #[test]
    fn real_codes_are_valid() {
        for code in ["91110000600037341L", "91110108551385082Q"] {
            assert!(CreditCode::parse(code).is_ok(), "{code}");
        }
    }

    #[test]
    fn a_wrong_check_character_is_refused_with_the_expected_one() {
        assert_eq!(
            CreditCode::parse("91350100M000100Y4Z"),
            Err(CreditCodeError::Character { position: 18, found: 'Z' })
        );
        assert_eq!(
            CreditCode::parse("91350100M000100Y44"),
            Err(CreditCodeError::CheckCharacter { expected: '3', found: '4' })
        );
        // Published as "valid" in a blog; its check character is wrong.
        assert!(matches!(CreditCode::parse("91310115MA1H8R7C6D"), Err(CreditCodeError::CheckCharacter { .. })));
    }

    #[test]
    fn typing_noise_is_tolerated() {
        assert_eq!(CreditCode::parse(" 91350100-m000100y43 ").unwrap().as_str(), "91350100M000100Y43");
    }

    #[test]
    fn the_division_code_must_be_digits() {
        assert_eq!(
            CreditCode::parse("9135A100M000100Y43"),
            Err(CreditCodeError::Character { position: 5, found: 'A' })
        );
    }

    #[test]
    fn length_and_alphabet_are_checked() {
        assert_eq!(CreditCode::parse("9135"), Err(CreditCodeError::Length(4)));
        assert_eq!(
            CreditCode::parse("I1350100M000100Y43"),
            Err(CreditCodeError::Character { position: 1, found: 'I' })
        );
    }
}
