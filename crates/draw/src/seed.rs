//! The seed (steps 2-4): a 32-byte server seed from the OS CSPRNG, committed to before the
//! witness co-signs; the witness's optional dice digits; and the seed string the sampler is given.
//!
//! The commitment is SHA-256 over the 32 raw seed bytes, not over their hex spelling. The hex
//! spelling is the seed string of a draw without dice, and SHA-256 of the seed string is the very
//! value every ticket is derived from (step 4): publishing that would let anyone holding the
//! commitment and the frozen list compute the order before the draw is executed.

use std::fmt;

use rand::TryRng;
use sha2::{Digest, Sha256};

use crate::error::SeedError;

/// Fewest dice digits a witness may enter (step 3).
pub const MIN_DICE_DIGITS: usize = 20;
/// Most dice digits accepted: enough for any number of rolls a witness will make, and a bound on
/// what ends up in the seed string.
pub const MAX_DICE_DIGITS: usize = 256;

/// The server's 32 secret bytes. Secret until the draw is executed, so `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerSeed([u8; 32]);

impl ServerSeed {
    /// 32 bytes from the operating system's random source (getrandom through `rand`'s `SysRng`),
    /// not from a user-space generator.
    pub fn generate() -> Result<Self, SeedError> {
        let mut bytes = [0u8; 32];
        rand::rngs::SysRng.try_fill_bytes(&mut bytes).map_err(|e| SeedError::Entropy(e.to_string()))?;
        Ok(Self(bytes))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Reads a stored or revealed seed: exactly 64 lower-case hex digits.
    pub fn from_hex(seed: &str) -> Result<Self, SeedError> {
        parse_lower_hex_32(seed, "server seed").map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lower-case hex digits that open the seed string.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// What is published at prepare: SHA-256 of the 32 raw bytes.
    pub fn commitment(&self) -> Commitment {
        Commitment(Sha256::digest(self.0).into())
    }
}

impl fmt::Debug for ServerSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerSeed(<secret>)")
    }
}

/// The published commitment to a server seed: SHA-256 over the seed's 32 raw bytes, written as
/// 64 lower-case hex digits. In Python: `hashlib.sha256(bytes.fromhex(seed_hex)).hexdigest()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commitment([u8; 32]);

impl Commitment {
    pub fn from_hex(commitment: &str) -> Result<Self, SeedError> {
        parse_lower_hex_32(commitment, "commitment").map(Self)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Whether `seed` is the seed this commitment was made to.
    pub fn opens_to(&self, seed: &ServerSeed) -> bool {
        seed.commitment() == *self
    }
}

impl fmt::Display for Commitment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Digits the witness rolled (step 3): ASCII `0`-`9`, [`MIN_DICE_DIGITS`] to [`MAX_DICE_DIGITS`]
/// of them, taken as typed (no spaces, no normalisation), because they enter the seed string
/// verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiceDigits(String);

impl DiceDigits {
    pub fn parse(digits: &str) -> Result<Self, SeedError> {
        if let Some(index) = digits.bytes().position(|b| !b.is_ascii_digit()) {
            return Err(SeedError::DiceNotDigits { byte: digits.as_bytes()[index], index });
        }
        if digits.len() < MIN_DICE_DIGITS {
            return Err(SeedError::TooFewDice { given: digits.len(), min: MIN_DICE_DIGITS });
        }
        if digits.len() > MAX_DICE_DIGITS {
            return Err(SeedError::TooManyDice { given: digits.len(), max: MAX_DICE_DIGITS });
        }
        Ok(Self(digits.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The string handed to the sampler as its seed: `<seed hex>` or `<seed hex>:<dice digits>`,
/// exactly those ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedString(String);

impl SeedString {
    pub fn new(seed: &ServerSeed, dice: Option<&DiceDigits>) -> Self {
        match dice {
            None => Self(seed.to_hex()),
            Some(dice) => Self(format!("{}:{}", seed.to_hex(), dice.0)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Lower-case hex SHA-256 of the seed string's UTF-8 bytes: the prefix of every ticket's hash
    /// input (the package's `sha256_hex(seed)`).
    pub fn sha256_hex(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

impl fmt::Display for SeedString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn parse_lower_hex_32(text: &str, what: &'static str) -> Result<[u8; 32], SeedError> {
    let lower_hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    if text.len() != 64 || !text.as_bytes().iter().all(lower_hex) {
        return Err(SeedError::NotLowerHex64 { what });
    }
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text, &mut bytes).map_err(|_| SeedError::NotLowerHex64 { what })?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_HEX: &str = "c1831afc2c49f459d963c504853465168d74fcab28af1092380c5da347b7c656";

    #[test]
    fn two_generated_seeds_differ() {
        assert_ne!(ServerSeed::generate().unwrap(), ServerSeed::generate().unwrap());
    }

    #[test]
    fn a_seed_round_trips_through_its_hex_spelling() {
        let seed = ServerSeed::from_hex(SEED_HEX).unwrap();
        assert_eq!(seed.to_hex(), SEED_HEX);
    }

    #[test]
    fn upper_case_short_or_prefixed_seed_hex_is_refused() {
        for bad in
            [&SEED_HEX.to_uppercase(), &SEED_HEX[..62], &format!("0x{}", &SEED_HEX[2..]), &format!("{SEED_HEX} ")]
        {
            assert!(matches!(ServerSeed::from_hex(bad), Err(SeedError::NotLowerHex64 { .. })), "{bad}");
        }
    }

    #[test]
    fn the_commitment_hashes_the_raw_bytes_not_the_hex() {
        let seed = ServerSeed::from_hex(SEED_HEX).unwrap();
        // The value in tests/vectors.json, "one id", computed by hashlib from the raw bytes.
        assert_eq!(seed.commitment().to_hex(), "3522aa914126fbca2d3ee98ef48673bd38daf368241308c54ea63359549a3fb4");
        assert_ne!(seed.commitment().to_hex(), SeedString::new(&seed, None).sha256_hex());
    }

    #[test]
    fn a_commitment_opens_only_to_its_own_seed() {
        let seed = ServerSeed::from_hex(SEED_HEX).unwrap();
        let commitment = Commitment::from_hex(&seed.commitment().to_hex()).unwrap();
        assert!(commitment.opens_to(&seed));
        assert!(!commitment.opens_to(&ServerSeed::from_bytes([0; 32])));
    }

    #[test]
    fn the_seed_is_not_shown_by_debug() {
        let seed = ServerSeed::from_hex(SEED_HEX).unwrap();
        assert!(!format!("{seed:?}").contains("c1831a"));
    }

    #[test]
    fn the_seed_string_is_the_hex_alone_without_dice() {
        let seed = ServerSeed::from_hex(SEED_HEX).unwrap();
        assert_eq!(SeedString::new(&seed, None).as_str(), SEED_HEX);
    }

    #[test]
    fn the_seed_string_joins_hex_and_dice_with_a_colon() {
        let seed = ServerSeed::from_hex(SEED_HEX).unwrap();
        let dice = DiceDigits::parse("31415926535897932384").unwrap();
        assert_eq!(SeedString::new(&seed, Some(&dice)).as_str(), format!("{SEED_HEX}:31415926535897932384"));
    }

    #[test]
    fn fewer_than_twenty_dice_digits_are_refused() {
        assert!(matches!(DiceDigits::parse("1234567890123456789"), Err(SeedError::TooFewDice { given: 19, min: 20 })));
        assert!(DiceDigits::parse("12345678901234567890").is_ok());
    }

    #[test]
    fn dice_digits_with_spaces_or_letters_are_refused() {
        assert!(matches!(
            DiceDigits::parse("1234 5678901234567890"),
            Err(SeedError::DiceNotDigits { byte: b' ', index: 4 })
        ));
        assert!(matches!(DiceDigits::parse("１２３"), Err(SeedError::DiceNotDigits { index: 0, .. })));
    }

    #[test]
    fn more_dice_digits_than_the_bound_are_refused() {
        assert!(DiceDigits::parse(&"6".repeat(MAX_DICE_DIGITS)).is_ok());
        assert!(matches!(DiceDigits::parse(&"6".repeat(MAX_DICE_DIGITS + 1)), Err(SeedError::TooManyDice { .. })));
    }
}
