//! Rivest's first-generation ticket (step 4), bit for bit as `consistent_sampler.first_fraction`
//! in PyPI `consistent-sampler` 1.0.10:
//!
//! 1. `h` = lower-case hex SHA-256 of the seed string's UTF-8 bytes;
//! 2. `d` = SHA-256 of the UTF-8 bytes of `h` followed by the id;
//! 3. `d` read as a 256-bit big-endian integer, written in decimal, zero-padded to at least 64
//!    digits (`"{:064d}"`; a 256-bit value has up to 78);
//! 4. those digits reversed, read as the fraction `0.<digits>`.
//!
//! The reversal puts the unbiased low-order digits first. Tickets are compared as digit strings,
//! as Python compares the package's ticket strings; that is not the same as comparing them as
//! numbers when one is a prefix of the other (`0.5` against `0.50`), a case that needs two equal
//! 64-digit prefixes and so never arises in practice, but the string order is what the package
//! does, so it is what this crate does.

use std::{cmp::Ordering, fmt};

use sha2::{Digest, Sha256};

/// A ticket number in (0, 1), kept as its decimal digits after `0.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ticket {
    digits: String,
}

impl Ticket {
    /// No ticket: the place of a candidate in an order that was given, not drawn
    /// ([`crate::DrawOrder::given`]).
    pub(crate) fn none() -> Self {
        Self { digits: String::new() }
    }

    /// The first-generation ticket of `id` under a seed whose SHA-256 hex is `seed_sha256_hex`.
    pub(crate) fn first_generation(seed_sha256_hex: &str, id: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(seed_sha256_hex.as_bytes());
        hasher.update(id.as_bytes());
        Self::from_digest(&hasher.finalize().into())
    }

    fn from_digest(digest: &[u8; 32]) -> Self {
        let mut digits = padded_decimal(digest);
        // The decimal text is ASCII, so reversing its bytes reverses its digits.
        let reversed: String = digits.drain(..).rev().collect();
        Self { digits: reversed }
    }

    /// Reads a ticket as written by the package: `0.` followed by decimal digits.
    pub fn parse(fraction: &str) -> Option<Self> {
        let digits = fraction.strip_prefix("0.")?;
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| Self { digits: digits.to_owned() })
    }

    /// The full ticket as the package writes it, `0.<digits>`.
    pub fn as_fraction(&self) -> String {
        format!("0.{}", self.digits)
    }

    /// The digits after `0.`.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// The ticket as the package's `sampler` prints it by default: cut (not rounded) after the
    /// leading run of 9s plus `significant` more digits, as its `trim(x, significant)`.
    pub fn trimmed(&self, significant: usize) -> String {
        let leading_nines = self.digits.bytes().take_while(|b| *b == b'9').count();
        let end = (leading_nines + significant).min(self.digits.len());
        format!("0.{}", &self.digits[..end])
    }
}

/// The package's order on ticket numbers: the strings `0.<digits>` compared as Python compares
/// strings, which for these ASCII digit strings is bytewise.
impl Ord for Ticket {
    fn cmp(&self, other: &Self) -> Ordering {
        self.digits.as_bytes().cmp(other.digits.as_bytes())
    }
}

impl PartialOrd for Ticket {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0.{}", self.digits)
    }
}

/// 10^19, the largest power of ten below 2^64: each division yields 19 decimal digits.
const TEN_TO_THE_19: u64 = 10_000_000_000_000_000_000;

/// The 256-bit big-endian `digest` in decimal, zero-padded to at least 64 digits, as Python's
/// `"{:064d}".format(int(hex, 16))`. Schoolbook division of four u64 limbs by 10^19.
fn padded_decimal(digest: &[u8; 32]) -> String {
    let mut limbs = [0u64; 4];
    for (limb, chunk) in limbs.iter_mut().zip(digest.chunks_exact(8)) {
        *limb = chunk.iter().fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
    }
    let mut groups: Vec<u64> = Vec::with_capacity(5);
    while limbs.iter().any(|limb| *limb != 0) {
        let mut remainder: u64 = 0;
        for limb in &mut limbs {
            let current = (u128::from(remainder) << 64) | u128::from(*limb);
            let divisor = u128::from(TEN_TO_THE_19);
            // remainder < 10^19, so current < 10^19 * 2^64: the quotient fits in 64 bits.
            *limb = u64::try_from(current / divisor).expect("quotient below 2^64");
            remainder = u64::try_from(current % divisor).expect("remainder below 10^19");
        }
        groups.push(remainder);
    }
    let mut decimal = String::with_capacity(78);
    for (index, group) in groups.iter().rev().enumerate() {
        if index == 0 {
            decimal.push_str(&group.to_string());
        } else {
            decimal.push_str(&format!("{group:019}"));
        }
    }
    if decimal.len() < 64 {
        decimal.insert_str(0, &"0".repeat(64 - decimal.len()));
    }
    decimal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256_hex(text: &str) -> String {
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    #[test]
    fn zero_is_sixty_four_zeros() {
        assert_eq!(padded_decimal(&[0; 32]), "0".repeat(64));
    }

    #[test]
    fn small_values_are_zero_padded_to_sixty_four_digits() {
        let mut digest = [0u8; 32];
        digest[31] = 42;
        assert_eq!(padded_decimal(&digest), format!("{}42", "0".repeat(62)));
    }

    #[test]
    fn the_largest_digest_is_two_to_the_256_minus_one() {
        assert_eq!(
            padded_decimal(&[0xff; 32]),
            "115792089237316195423570985008687907853269984665640564039457584007913129639935"
        );
    }

    #[test]
    fn a_value_spanning_limbs_converts_exactly() {
        // 2^64 = 18446744073709551616 and 2^128 = 340282366920938463463374607431768211456.
        let mut digest = [0u8; 32];
        digest[23] = 1;
        assert_eq!(padded_decimal(&digest).trim_start_matches('0'), "18446744073709551616");
        let mut digest = [0u8; 32];
        digest[15] = 1;
        assert_eq!(padded_decimal(&digest).trim_start_matches('0'), "340282366920938463463374607431768211456");
    }

    #[test]
    fn a_group_with_leading_zeros_inside_the_number_keeps_them() {
        // 10^19 exactly: one group "1" then a group of nineteen zeros.
        let mut digest = [0u8; 32];
        digest[24..].copy_from_slice(&TEN_TO_THE_19.to_be_bytes());
        assert_eq!(padded_decimal(&digest).trim_start_matches('0'), format!("1{}", "0".repeat(19)));
    }

    #[test]
    fn the_packages_own_sha256_uniform_example_is_reproduced() {
        // consistent_sampler.sha256_uniform("abc") from the package's docstring.
        let digest: [u8; 32] = Sha256::digest(b"abc").into();
        assert_eq!(
            Ticket::from_digest(&digest).as_fraction(),
            "0.56998071861792858926477341561059638840106636224182943832566300809078486324348"
        );
    }

    #[test]
    fn the_packages_own_first_fraction_example_is_reproduced() {
        // consistent_sampler.first_fraction('AB-130', '01382438112797316654') from its docstring.
        let ticket = Ticket::first_generation(&sha256_hex("01382438112797316654"), "AB-130");
        assert_eq!(
            ticket.as_fraction(),
            "0.26299714122838008416507544297546663599715395525154425586041245287750224561854"
        );
    }

    #[test]
    fn tickets_compare_as_digit_strings_like_python() {
        let t = |s: &str| Ticket::parse(s).unwrap();
        assert!(t("0.1") < t("0.2"));
        assert!(t("0.19") < t("0.2"));
        // A prefix sorts first, as in Python, even where the numbers are equal.
        assert!(t("0.5") < t("0.50"));
    }

    #[test]
    fn trimming_keeps_the_leading_nines_and_nine_more_digits() {
        let t = |s: &str| Ticket::parse(s).unwrap();
        assert_eq!(t("0.12345678901234").trimmed(9), "0.123456789");
        assert_eq!(t("0.9991234567890123").trimmed(4), "0.9991234");
        assert_eq!(t("0.99912").trimmed(9), "0.99912");
    }

    #[test]
    fn a_ticket_must_be_zero_point_digits() {
        assert!(Ticket::parse("0.123").is_some());
        for bad in ["0.", "1.5", ".5", "0.12a", "0,5"] {
            assert!(Ticket::parse(bad).is_none(), "{bad}");
        }
    }
}
