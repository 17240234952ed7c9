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

use std::{cmp::Ordering, fmt, hash, sync::OnceLock};

/// A ticket number in (0, 1), kept as its decimal digits after `0.`. A ticket computed here
/// keeps the SHA-256 digest it comes from and writes the digits only when they are asked for:
/// an order of 100,000 candidates needs every ticket's [`Ticket::sort_key`], read straight off
/// the digest, but the full digits of only the few it shows.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// The hash the ticket was computed from; `None` for a ticket read from its digits.
    digest: Option<[u8; 32]>,
    digits: OnceLock<String>,
}

impl Ticket {
    /// No ticket: the place of a candidate in an order that was given, not drawn
    /// ([`crate::DrawOrder::given`]).
    pub(crate) fn none() -> Self {
        Self::from_digits(String::new())
    }

    fn from_digits(digits: String) -> Self {
        Self { digest: None, digits: OnceLock::from(digits) }
    }

    /// The first-generation ticket of `id` under a seed whose SHA-256 hex is `seed_sha256_hex`.
    #[cfg(test)]
    pub(crate) fn first_generation(seed_sha256_hex: &str, id: &str) -> Self {
        Self::from_digest(TicketHasher::new(seed_sha256_hex).digest(id))
    }

    /// The ticket read from `digest` (see [`TicketHasher::digest`]).
    pub(crate) fn from_digest(digest: [u8; 32]) -> Self {
        Self { digest: Some(digest), digits: OnceLock::new() }
    }

    /// [`Self::sort_key`] of the ticket read from `digest`, without making the ticket.
    pub(crate) fn digest_sort_key(digest: &[u8; 32]) -> u64 {
        reversed_19(low_19_digits(digest))
    }

    /// The first nineteen digits as a number, shorter tickets padded with zeros: an order on
    /// tickets that agrees with [`Ord`] wherever two keys differ (`0` is the smallest digit, so a
    /// padded prefix sorts where the string does). Equal keys say nothing; [`Ord`] decides.
    ///
    /// For a computed ticket the digits are the digest's decimal reversed, so its first nineteen
    /// are the last nineteen of the decimal, read backwards: the digest modulo 10^19, reversed.
    /// The ranking reads it straight off the digest ([`Self::digest_sort_key`]); the tests hold
    /// the two ways to the same number.
    #[cfg(test)]
    pub(crate) fn sort_key(&self) -> u64 {
        if let Some(digest) = &self.digest {
            return Self::digest_sort_key(digest);
        }
        let mut key = 0u64;
        let mut digits = self.digits().bytes();
        for _ in 0..19 {
            key = key * 10 + digits.next().map_or(0, |d| u64::from(d - b'0'));
        }
        key
    }

    /// Reads a ticket as written by the package: `0.` followed by decimal digits.
    pub fn parse(fraction: &str) -> Option<Self> {
        let digits = fraction.strip_prefix("0.")?;
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| Self::from_digits(digits.to_owned()))
    }

    /// The full ticket as the package writes it, `0.<digits>`.
    pub fn as_fraction(&self) -> String {
        format!("0.{}", self.digits())
    }

    /// The digits after `0.`.
    pub fn digits(&self) -> &str {
        self.digits.get_or_init(|| {
            let digest = self.digest.as_ref().expect("a ticket without digits has its digest");
            // The decimal text is ASCII, so reversing its bytes reverses its digits.
            padded_decimal(digest).bytes().rev().map(char::from).collect()
        })
    }

    /// The ticket as the package's `sampler` prints it by default: cut (not rounded) after the
    /// leading run of 9s plus `significant` more digits, as its `trim(x, significant)`.
    pub fn trimmed(&self, significant: usize) -> String {
        let digits = self.digits();
        let leading_nines = digits.bytes().take_while(|b| *b == b'9').count();
        let end = (leading_nines + significant).min(digits.len());
        format!("0.{}", &digits[..end])
    }
}

/// The SHA-256 of every ticket's hash input under one seed: the seed string's SHA-256 hex (64
/// bytes, one block, compressed once per order) followed by a candidate's id.
///
/// Each digest runs SHA-256's compression from the state after that first block over the id's
/// padded blocks, kept on the stack. Cloning a [`sha2::Sha256`] per candidate and finalizing it moved
/// its buffers about four times: at 100,000 candidates that copying was 38 % of the ranking, more
/// than the hashing (issue 12, docs/performance.md, eleventh run). The tests hold every length of
/// id to [`sha2::Sha256`]'s own digest.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TicketHasher {
    /// The chaining value after the seed's block.
    state: [u32; 8],
}

/// SHA-256's initial hash value (FIPS 180-4, 5.3.3).
const SHA256_IV: [u32; 8] =
    [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// SHA-256's block, in bytes.
const BLOCK: usize = 64;

impl TicketHasher {
    /// The hasher for the seed whose SHA-256 hex is `seed_sha256_hex` (64 characters: a seed
    /// string's [`crate::SeedString::sha256_hex`]).
    pub(crate) fn new(seed_sha256_hex: &str) -> Self {
        let block: &[u8; BLOCK] =
            seed_sha256_hex.as_bytes().try_into().expect("a SHA-256 hex is 64 characters, one block");
        let mut state = SHA256_IV;
        compress(&mut state, block);
        Self { state }
    }

    /// The SHA-256 digest of the seed's hex followed by `id`: the first-generation ticket of `id`.
    pub(crate) fn digest(&self, id: &str) -> [u8; 32] {
        let mut state = self.state;
        let message = id.as_bytes();
        let mut whole = message.chunks_exact(BLOCK);
        for block in whole.by_ref() {
            compress(&mut state, block.try_into().expect("a whole block"));
        }
        // The tail, the 0x80 marker and the message's length in bits (the seed's block counted),
        // in one block or, when the tail leaves fewer than nine bytes, two.
        let tail = whole.remainder();
        let bits = (BLOCK as u64 + message.len() as u64) * 8;
        let mut last = [[0u8; BLOCK]; 2];
        last[0][..tail.len()].copy_from_slice(tail);
        last[0][tail.len()] = 0x80;
        let blocks = if tail.len() + 9 <= BLOCK { 1 } else { 2 };
        last[blocks - 1][BLOCK - 8..].copy_from_slice(&bits.to_be_bytes());
        for block in &last[..blocks] {
            compress(&mut state, block);
        }
        let mut digest = [0u8; 32];
        for (bytes, word) in digest.chunks_exact_mut(4).zip(state) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        digest
    }
}

/// One SHA-256 compression of `block` into `state` (the `sha2` crate's, with the CPU's SHA
/// instructions where it has them).
#[allow(deprecated, reason = "sha2 0.10 takes its blocks as generic-array 0.14's type, deprecated in its last release")]
fn compress(state: &mut [u32; 8], block: &[u8; BLOCK]) {
    let block = sha2::digest::generic_array::GenericArray::from_slice(block);
    sha2::compress256(state, std::slice::from_ref(block));
}

/// The package's order on ticket numbers: the strings `0.<digits>` compared as Python compares
/// strings, which for these ASCII digit strings is bytewise.
impl Ord for Ticket {
    fn cmp(&self, other: &Self) -> Ordering {
        self.digits().as_bytes().cmp(other.digits().as_bytes())
    }
}

impl PartialEq for Ticket {
    fn eq(&self, other: &Self) -> bool {
        match (&self.digest, &other.digest) {
            (Some(a), Some(b)) => a == b,
            _ => self.digits() == other.digits(),
        }
    }
}

impl Eq for Ticket {}

impl hash::Hash for Ticket {
    fn hash<H: hash::Hasher>(&self, state: &mut H) {
        self.digits().hash(state);
    }
}

impl PartialOrd for Ticket {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0.{}", self.digits())
    }
}

/// 5^19: 10^19 is 2^19 times this.
const FIVE_TO_THE_19: u64 = 19_073_486_328_125;

/// 2^(32 j) modulo 5^19 for j = 0..8: the weight of each 32-bit word of a digest, least
/// significant first.
const WORD_WEIGHTS: [u64; 8] = {
    let mut weights = [0u64; 8];
    let mut weight: u128 = 1;
    let mut j = 0;
    while j < 8 {
        weights[j] = weight as u64;
        weight = (weight << 32) % FIVE_TO_THE_19 as u128;
        j += 1;
    }
    weights
};

/// 2^64 modulo 5^19.
const TWO_TO_THE_64_MOD: u64 = ((1u128 << 64) % FIVE_TO_THE_19 as u128) as u64;

/// The inverse of 5^19 modulo 2^64 (Newton's iteration: each step doubles the correct low bits,
/// from 3 for any odd number).
const FIVE_TO_THE_19_INVERSE: u64 = {
    let mut inverse: u64 = FIVE_TO_THE_19;
    let mut step = 0;
    while step < 6 {
        inverse = inverse.wrapping_mul(2u64.wrapping_sub(FIVE_TO_THE_19.wrapping_mul(inverse)));
        step += 1;
    }
    inverse
};

/// The 256-bit big-endian `digest` modulo 10^19: its last nineteen decimal digits. Found modulo
/// 2^19 (its low bits) and modulo 5^19 (its words weighted by [`WORD_WEIGHTS`], which sum within
/// 128 bits), then put together by the Chinese remainder theorem. Every division is by a
/// constant below 2^64, which the compiler turns into multiplications; Horner's rule over 64-bit
/// limbs took four 128-bit divisions, a fifth of the ranking (eleventh run).
fn low_19_digits(digest: &[u8; 32]) -> u64 {
    let word = |j: usize| {
        let at = 28 - 4 * j;
        u32::from_be_bytes([digest[at], digest[at + 1], digest[at + 2], digest[at + 3]])
    };
    // Below 8 * 2^32 * 5^19 < 2^80.
    let weighted: u128 = (0..8).map(|j| u128::from(word(j)) * u128::from(WORD_WEIGHTS[j])).sum();
    let (high, low) = ((weighted >> 64) as u64, weighted as u64);
    // high < 2^16, so high * (2^64 mod 5^19) < 2^61.
    let mod_five = (high * TWO_TO_THE_64_MOD + low % FIVE_TO_THE_19) % FIVE_TO_THE_19;
    let mask = (1u64 << 19) - 1;
    let mod_two = u64::from(word(0)) & mask;
    // The t in [0, 2^19) with mod_five + 5^19 t = mod_two (mod 2^19); the sum stays below 10^19.
    let t = mod_two.wrapping_sub(mod_five).wrapping_mul(FIVE_TO_THE_19_INVERSE) & mask;
    mod_five + FIVE_TO_THE_19 * t
}

/// `value` (below 10^19) written as nineteen digits with leading zeros, read backwards: four
/// groups of four digits and one of three, least significant first, each reversed by
/// [`REVERSED_4`] and placed from the front. A digit at a time was a fifth of the ranking.
fn reversed_19(value: u64) -> u64 {
    let mut rest = value;
    let mut reversed = 0u64;
    for place in [1_000_000_000_000_000u64, 100_000_000_000, 10_000_000, 1_000] {
        reversed += u64::from(REVERSED_4[(rest % 10_000) as usize]) * place;
        rest /= 10_000;
    }
    // The top three digits, as four with a leading zero: reversed, that zero is last.
    reversed + u64::from(REVERSED_4[rest as usize]) / 10
}

/// Every number below 10,000 written as four digits with leading zeros, read backwards.
static REVERSED_4: [u16; 10_000] = {
    let mut table = [0u16; 10_000];
    let mut n = 0;
    while n < 10_000 {
        table[n] = ((n % 10) * 1000 + (n / 10 % 10) * 100 + (n / 100 % 10) * 10 + n / 1000) as u16;
        n += 1;
    }
    table
};

/// 10^9, the largest power of ten below 2^32: each pass of [`padded_decimal`]'s division yields
/// nine decimal digits, with u64 arithmetic only (a 128-bit division is a library call, and the
/// ranking of a 100,000-candidate order makes a million of them).
const TEN_TO_THE_9: u64 = 1_000_000_000;

/// The 256-bit big-endian `digest` in decimal, zero-padded to at least 64 digits, as Python's
/// `"{:064d}".format(int(hex, 16))`. Schoolbook division of eight u32 limbs by 10^9.
fn padded_decimal(digest: &[u8; 32]) -> String {
    let mut limbs = [0u32; 8];
    for (limb, chunk) in limbs.iter_mut().zip(digest.chunks_exact(4)) {
        *limb = chunk.iter().fold(0u32, |acc, byte| (acc << 8) | u32::from(*byte));
    }
    // Groups of nine digits, least significant first: 2^256 < 10^81, so nine groups at most.
    let mut groups = [0u32; 9];
    let mut count = 0;
    let mut top = 0;
    while top < limbs.len() {
        if limbs[top] == 0 {
            top += 1;
            continue;
        }
        let mut remainder: u64 = 0;
        for limb in &mut limbs[top..] {
            let current = (remainder << 32) | u64::from(*limb);
            // remainder < 10^9, so current < 10^9 * 2^32: the quotient fits in 32 bits.
            *limb = u32::try_from(current / TEN_TO_THE_9).expect("quotient below 2^32");
            remainder = current % TEN_TO_THE_9;
        }
        groups[count] = u32::try_from(remainder).expect("remainder below 10^9");
        count += 1;
    }
    let mut decimal = Vec::with_capacity(81);
    for (index, group) in groups[..count].iter().rev().enumerate() {
        let mut digits = [b'0'; 9];
        let mut value = *group;
        for slot in digits.iter_mut().rev() {
            *slot = b'0' + u8::try_from(value % 10).expect("a digit");
            value /= 10;
        }
        // The most significant group is written without its leading zeros, the others in full.
        let skip = if index == 0 { digits.iter().take_while(|d| **d == b'0').count().min(8) } else { 0 };
        decimal.extend_from_slice(&digits[skip..]);
    }
    if decimal.len() < 64 {
        let padding = 64 - decimal.len();
        decimal.splice(0..0, std::iter::repeat_n(b'0', padding));
    }
    String::from_utf8(decimal).expect("ASCII digits")
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    fn sha256_hex(text: &str) -> String {
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    #[test]
    fn the_ticket_hasher_is_sha256_of_the_seed_hex_and_the_id_for_ids_of_every_length() {
        let seed = sha256_hex("every length");
        let hasher = TicketHasher::new(&seed);
        // 0..=200 bytes: one block after the seed's, the two-block tails (56..=63), whole blocks
        // and more; and non-ASCII text.
        let mut ids: Vec<String> = (0..=200).map(|n| "x".repeat(n)).collect();
        ids.extend(["exp_0001".to_owned(), "专家-江门-0001".to_owned()]);
        for id in ids {
            let expected: [u8; 32] = Sha256::digest(format!("{seed}{id}").as_bytes()).into();
            assert_eq!(hasher.digest(&id), expected, "id of {} bytes", id.len());
        }
    }

    /// [`low_19_digits`] by Horner's rule over 64-bit limbs, in 128-bit arithmetic.
    fn low_19_by_limbs(digest: &[u8; 32]) -> u64 {
        digest.chunks_exact(8).fold(0u64, |remainder, chunk| {
            let limb = u64::from_be_bytes(chunk.try_into().unwrap());
            let current = (u128::from(remainder) << 64) | u128::from(limb);
            u64::try_from(current % 10_000_000_000_000_000_000).unwrap()
        })
    }

    #[test]
    fn the_last_nineteen_digits_by_remainders_are_those_by_long_division() {
        let mut digests: Vec<[u8; 32]> = (0u32..20_000).map(|n| Sha256::digest(n.to_be_bytes()).into()).collect();
        digests.extend([[0u8; 32], [0xff; 32]]);
        for k in 0..32 {
            let mut one = [0u8; 32];
            one[k] = 1;
            let mut all_but = [0xff; 32];
            all_but[k] = 0;
            digests.extend([one, all_but]);
        }
        for digest in digests {
            assert_eq!(low_19_digits(&digest), low_19_by_limbs(&digest), "{}", hex::encode(digest));
        }
        assert_eq!(FIVE_TO_THE_19.wrapping_mul(FIVE_TO_THE_19_INVERSE), 1);
    }

    /// [`reversed_19`] a digit at a time.
    fn reversed_by_digits(mut value: u64) -> u64 {
        let mut reversed = 0;
        for _ in 0..19 {
            reversed = reversed * 10 + value % 10;
            value /= 10;
        }
        reversed
    }

    #[test]
    fn nineteen_digits_reverse_by_groups_as_they_do_a_digit_at_a_time() {
        let mut values = vec![0, 1, 9, 10, 1_000, 9_999, 10_000, 123_456_789, 9_999_999_999_999_999_999];
        values.extend((0..19).map(|k| 10u64.pow(k)));
        values.extend((0..19).map(|k| 10u64.pow(k) - 1));
        values.extend((0u32..5_000).map(|n| low_19_digits(&Sha256::digest(n.to_be_bytes()).into())));
        for value in values {
            assert_eq!(reversed_19(value), reversed_by_digits(value), "{value}");
        }
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
        digest[24..].copy_from_slice(&10_000_000_000_000_000_000u64.to_be_bytes());
        assert_eq!(padded_decimal(&digest).trim_start_matches('0'), format!("1{}", "0".repeat(19)));
    }

    /// The decimal of `digest` by the plainest means: repeated 128-bit division by ten.
    fn decimal_by_tens(digest: &[u8; 32]) -> String {
        let (mut high, mut low) = (
            u128::from_be_bytes(digest[..16].try_into().unwrap()),
            u128::from_be_bytes(digest[16..].try_into().unwrap()),
        );
        let mut digits = Vec::new();
        while high != 0 || low != 0 {
            // (high * 2^128 + low) / 10, one 64-bit half of `low` at a time.
            let remainder_high = high % 10;
            high /= 10;
            let upper = (remainder_high << 64) | (low >> 64);
            let (upper_q, upper_r) = (upper / 10, upper % 10);
            let lower = (upper_r << 64) | (low & u128::from(u64::MAX));
            let (lower_q, lower_r) = (lower / 10, lower % 10);
            low = (upper_q << 64) | lower_q;
            digits.push(b'0' + u8::try_from(lower_r).unwrap());
        }
        digits.reverse();
        let text = String::from_utf8(digits).unwrap();
        format!("{text:0>64}")
    }

    #[test]
    fn the_decimal_agrees_with_division_by_ten_on_many_digests() {
        // Digests of all sizes: SHA-256 outputs, and values with leading zero bytes and limbs.
        for n in 0u32..3_000 {
            let mut digest: [u8; 32] = Sha256::digest(n.to_be_bytes()).into();
            let zeros = usize::try_from(n % 33).unwrap();
            digest[..zeros].fill(0);
            assert_eq!(padded_decimal(&digest), decimal_by_tens(&digest), "digest {}", hex::encode(digest));
        }
    }

    #[test]
    fn the_packages_own_sha256_uniform_example_is_reproduced() {
        // consistent_sampler.sha256_uniform("abc") from the package's docstring.
        let digest: [u8; 32] = Sha256::digest(b"abc").into();
        assert_eq!(
            Ticket { digest: Some(digest), digits: OnceLock::new() }.as_fraction(),
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
    fn the_sort_key_orders_as_the_digits_do_where_keys_differ() {
        let t = |s: &str| Ticket::parse(s).unwrap();
        let tickets = [
            t("0.5"),
            t("0.50"),
            t("0.51"),
            t("0.4999999999999999999999"),
            t("0.0000000000000000001"),
            t("0.00000000000000000009"),
            t("0.1234567890123456789"),
            t("0.12345678901234567891"),
            t("0.9"),
        ];
        for a in &tickets {
            for b in &tickets {
                if a.sort_key() != b.sort_key() {
                    assert_eq!(a.sort_key().cmp(&b.sort_key()), a.cmp(b), "{a} against {b}");
                }
            }
        }
    }

    #[test]
    fn a_computed_tickets_key_read_off_its_digest_is_the_key_of_its_digits() {
        let seed = sha256_hex("the key and the digits");
        let mut digests: Vec<[u8; 32]> =
            (0..2000).map(|n| Sha256::digest(format!("{seed}exp_{n:032x}").as_bytes()).into()).collect();
        // Values with runs of zeros in the low digits, and the extremes.
        digests.extend([[0u8; 32], [0xff; 32], {
            let mut d = [0u8; 32];
            d[31] = 10;
            d
        }]);
        for digest in digests {
            let computed = Ticket { digest: Some(digest), digits: OnceLock::new() };
            let read = Ticket::parse(&computed.as_fraction()).unwrap();
            assert_eq!(computed.sort_key(), read.sort_key(), "{computed}");
            assert_eq!(computed, read);
            assert_eq!(computed.cmp(&read), Ordering::Equal);
        }
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
