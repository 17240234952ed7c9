//! Identity documents of D19: which numbers are valid for which document.
//!
//! The resident ID card, the foreigner's permanent-residence card and the Hong Kong, Macao and
//! Taiwan residence permit all carry an 18-character number with the GB 11643-1999 check
//! character (ISO 7064 MOD 11-2); the travel permits and passports are checked for format only.

use std::fmt;

use chrono::NaiveDate;

/// The document types of D19.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocumentType {
    /// 居民身份证.
    ResidentIdCard,
    /// 外国人永久居留身份证 (2023 edition: first character 9).
    PermanentResidenceCard,
    /// 港澳台居民居住证 (first two characters 81, 82 or 83).
    HmtResidencePermit,
    /// 港澳居民来往内地通行证 (回乡证): H or M and 8 or 10 digits.
    HomeReturnPermit,
    /// 台湾居民来往大陆通行证 (台胞证): 8 digits (2015 card) or 10 characters (older booklets).
    TaiwanCompatriotPermit,
    /// 护照: 5 to 17 letters and digits, with the issuing country.
    Passport,
}

impl DocumentType {
    pub const ALL: [Self; 6] = [
        Self::ResidentIdCard,
        Self::PermanentResidenceCard,
        Self::HmtResidencePermit,
        Self::HomeReturnPermit,
        Self::TaiwanCompatriotPermit,
        Self::Passport,
    ];

    /// The stable code stored in databases.
    pub fn code(self) -> &'static str {
        match self {
            Self::ResidentIdCard => "RESIDENT_ID_CARD",
            Self::PermanentResidenceCard => "PERMANENT_RESIDENCE_CARD",
            Self::HmtResidencePermit => "HMT_RESIDENCE_PERMIT",
            Self::HomeReturnPermit => "HOME_RETURN_PERMIT",
            Self::TaiwanCompatriotPermit => "TAIWAN_COMPATRIOT_PERMIT",
            Self::Passport => "PASSPORT",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }

    /// Whether the number carries the GB 11643 check character (and a birth date).
    pub fn has_check_character(self) -> bool {
        matches!(self, Self::ResidentIdCard | Self::PermanentResidenceCard | Self::HmtResidencePermit)
    }
}

/// Why a document number is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("must be 18 characters: 17 digits and a digit or X")]
    Format,
    #[error("wrong check character: expected {expected}, found {found}")]
    CheckCharacter { expected: char, found: char },
    #[error("the birth date {0} is not a real date in the past")]
    BirthDate(String),
    #[error("the first two digits are not a province code")]
    Province,
    #[error("a permanent-residence card number starts with 9")]
    NotPermanentResidence,
    #[error("a Hong Kong, Macao or Taiwan residence permit number starts with 81, 82 or 83")]
    NotHmtPermit,
    #[error("a home-return permit is H or M followed by 8 or 10 digits")]
    HomeReturnFormat,
    #[error("a Taiwan compatriot permit is 8 digits, or 10 letters and digits")]
    TaiwanFormat,
    #[error("a passport number is 5 to 17 letters and digits")]
    PassportFormat,
    #[error("a passport needs its issuing country as an ISO 3166-1 alpha-3 code")]
    IssuingCountry,
}

/// A valid identity document, number normalised (upper-case, no spaces).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdentityDocument {
    pub kind: DocumentType,
    number: String,
    /// For passports: the ISO 3166-1 alpha-3 code of the issuing country.
    pub issuing_country: String,
}

// Never print a number in full, not even in debug output that may reach a log.
impl fmt::Debug for IdentityDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityDocument")
            .field("kind", &self.kind)
            .field("number", &crate::personal::mask_document(&self.number))
            .finish_non_exhaustive()
    }
}

/// Weights of positions 1 to 17 in ISO 7064 MOD 11-2: 2^(18-i) mod 11.
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK: &[u8; 11] = b"10X98765432";
/// First two digits of the mainland province-level codes of GB/T 2260.
const PROVINCES: [&str; 31] = [
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41", "42", "43", "44",
    "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65",
];

impl IdentityDocument {
    /// Validates `number` as a document of `kind` on `today` (birth dates may not be later).
    pub fn parse(
        kind: DocumentType,
        number: &str,
        issuing_country: &str,
        today: NaiveDate,
    ) -> Result<Self, DocumentError> {
        let number: String = number.chars().filter(|c| !c.is_whitespace()).map(|c| c.to_ascii_uppercase()).collect();
        let country = issuing_country.trim().to_ascii_uppercase();
        match kind {
            DocumentType::ResidentIdCard => {
                check_mod11(&number, today)?;
                if !PROVINCES.contains(&&number[..2]) {
                    return Err(DocumentError::Province);
                }
            }
            DocumentType::PermanentResidenceCard => {
                check_mod11(&number, today)?;
                if !number.starts_with('9') {
                    return Err(DocumentError::NotPermanentResidence);
                }
            }
            DocumentType::HmtResidencePermit => {
                check_mod11(&number, today)?;
                if !["81", "82", "83"].contains(&&number[..2]) {
                    return Err(DocumentError::NotHmtPermit);
                }
            }
            DocumentType::HomeReturnPermit => {
                let digits = number.strip_prefix(['H', 'M']).ok_or(DocumentError::HomeReturnFormat)?;
                if !(matches!(digits.len(), 8 | 10) && digits.bytes().all(|b| b.is_ascii_digit())) {
                    return Err(DocumentError::HomeReturnFormat);
                }
            }
            DocumentType::TaiwanCompatriotPermit => {
                let ok = (number.len() == 8 && number.bytes().all(|b| b.is_ascii_digit()))
                    || (number.len() == 10 && number.bytes().all(|b| b.is_ascii_alphanumeric()));
                if !ok {
                    return Err(DocumentError::TaiwanFormat);
                }
            }
            DocumentType::Passport => {
                if !((5..=17).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_alphanumeric())) {
                    return Err(DocumentError::PassportFormat);
                }
                if !(country.len() == 3 && country.bytes().all(|b| b.is_ascii_uppercase())) {
                    return Err(DocumentError::IssuingCountry);
                }
            }
        }
        let issuing_country = if kind == DocumentType::Passport { country } else { String::new() };
        Ok(Self { kind, number, issuing_country })
    }

    /// The full number: for encryption and blind indexing only, never for display or logs.
    pub fn number(&self) -> &str {
        &self.number
    }

    /// What a blind index is computed over: the type and the number, so the same digits on two
    /// kinds of document stay apart.
    pub fn index_input(&self) -> String {
        format!("{}:{}:{}", self.kind.code(), self.issuing_country, self.number)
    }

    /// The birth date the number carries, for the documents that carry one.
    pub fn birth_date(&self) -> Option<NaiveDate> {
        if !self.kind.has_check_character() {
            return None;
        }
        NaiveDate::parse_from_str(&self.number[6..14], "%Y%m%d").ok()
    }
}

/// Format, check character and birth date of an 18-character GB 11643 number.
fn check_mod11(number: &str, today: NaiveDate) -> Result<(), DocumentError> {
    let bytes = number.as_bytes();
    let well_formed = bytes.len() == 18
        && bytes[..17].iter().all(u8::is_ascii_digit)
        && (bytes[17].is_ascii_digit() || bytes[17] == b'X');
    if !well_formed {
        return Err(DocumentError::Format);
    }
    let sum: u32 = bytes[..17].iter().zip(WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    let expected = char::from(CHECK[(sum % 11) as usize]);
    let found = char::from(bytes[17]);
    if expected != found {
        return Err(DocumentError::CheckCharacter { expected, found });
    }
    let birth = &number[6..14];
    match NaiveDate::parse_from_str(birth, "%Y%m%d") {
        Ok(date) if date <= today && date.format("%Y").to_string().as_str() >= "1900" => Ok(()),
        _ => Err(DocumentError::BirthDate(birth.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()
    }

    fn resident(number: &str) -> Result<IdentityDocument, DocumentError> {
        IdentityDocument::parse(DocumentType::ResidentIdCard, number, "", today())
    }

    #[test]
    fn the_standards_examples_are_valid() {
        assert!(resident("11010519491231002X").is_ok());
        assert!(resident("440524188001010014").is_err(), "born 1880: before 1900");
        assert!(resident("360426199101010071").is_ok());
        assert_eq!(resident(" 11010519491231002x ").unwrap().number(), "11010519491231002X");
    }

    #[test]
    fn a_wrong_check_character_names_the_right_one() {
        assert_eq!(resident("110105194912310021"), Err(DocumentError::CheckCharacter { expected: 'X', found: '1' }));
    }

    /// Completes a 17-digit body with its check character, by the standard's other form of the
    /// rule, c = (12 - S mod 11) mod 11 with 10 written X, so the test does not reuse the table.
    fn with_check(body: &str) -> String {
        let sum: u32 = body.bytes().enumerate().map(|(i, b)| u32::from(b - b'0') * ((1u32 << (17 - i)) % 11)).sum();
        let c = (12 - sum % 11) % 11;
        format!("{body}{}", if c == 10 { 'X' } else { char::from_digit(c, 10).unwrap() })
    }

    #[test]
    fn the_two_forms_of_the_check_rule_agree() {
        assert_eq!(with_check("11010519491231002"), "11010519491231002X");
        assert_eq!(with_check("36042619910101007"), "360426199101010071");
    }

    #[test]
    fn impossible_birth_dates_and_provinces_are_refused() {
        assert_eq!(resident(&with_check("44070320260230001")), Err(DocumentError::BirthDate("20260230".into())));
        assert_eq!(resident(&with_check("44070320300101001")), Err(DocumentError::BirthDate("20300101".into())));
        assert_eq!(resident(&with_check("99010519491231002")), Err(DocumentError::Province));
        assert!(resident(&with_check("44070319850615002")).is_ok(), "a Pengjiang number");
        assert_eq!(resident("1101051949123100"), Err(DocumentError::Format));
    }

    #[test]
    fn residence_cards_and_permits_use_the_same_check_with_their_prefixes() {
        // A resident number is not a permanent-residence card.
        assert_eq!(
            IdentityDocument::parse(DocumentType::PermanentResidenceCard, "11010519491231002X", "", today()),
            Err(DocumentError::NotPermanentResidence)
        );
        assert_eq!(
            IdentityDocument::parse(DocumentType::HmtResidencePermit, "11010519491231002X", "", today()),
            Err(DocumentError::NotHmtPermit)
        );
        for (kind, body) in [
            (DocumentType::PermanentResidenceCard, "93044019800101001"),
            (DocumentType::HmtResidencePermit, "81000019800101001"),
        ] {
            assert!(IdentityDocument::parse(kind, &with_check(body), "", today()).is_ok(), "{body}");
        }
    }

    #[test]
    fn travel_documents_are_checked_for_format() {
        assert!(IdentityDocument::parse(DocumentType::HomeReturnPermit, "H12345678", "", today()).is_ok());
        assert!(IdentityDocument::parse(DocumentType::HomeReturnPermit, "X12345678", "", today()).is_err());
        assert!(IdentityDocument::parse(DocumentType::TaiwanCompatriotPermit, "12345678", "", today()).is_ok());
        assert!(IdentityDocument::parse(DocumentType::Passport, "E12345678", "can", today()).is_ok());
        assert_eq!(
            IdentityDocument::parse(DocumentType::Passport, "E12345678", "", today()),
            Err(DocumentError::IssuingCountry)
        );
    }

    #[test]
    fn debug_output_never_shows_the_number() {
        let doc = resident("11010519491231002X").unwrap();
        let shown = format!("{doc:?}");
        assert!(!shown.contains("19491231"), "{shown}");
    }
}
