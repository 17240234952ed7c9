//! Masking personal numbers in free text before it reaches a log line or a span.
//!
//! Whatever a caller typed (a name, a path, an error message quoting a value) may hold a citizen
//! ID number, a mobile number or a bank account. [`redact`] masks every such number it finds:
//!
//! * an 18-character ID number (17 digits and a digit or `X`): `440***********123X`;
//! * an 11-digit mainland mobile number (`1[3-9]` and 9 digits): `138****5678`;
//! * any other run of 12 to 19 digits (bank cards and accounts, 15-digit old ID numbers, numbers
//!   with a country code): all but the last four digits masked.
//!
//! A number counts only when it stands on its own: digits that touch an ASCII letter or digit
//! (inside a hex hash, a trace id, a base64 token) are left alone, and so is a UUID. Shorter
//! numbers (counts, dates, sequence numbers) are never touched.

use std::borrow::Cow;

/// `text` with every ID, mobile and account number masked; borrowed when nothing was found.
pub fn redact(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    if !has_long_digit_run(bytes) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(len) = uuid_at(bytes, i) {
            i += len;
            continue;
        }
        if !bytes[i].is_ascii_digit() || (i > 0 && is_word_byte(bytes[i - 1])) {
            i += 1;
            continue;
        }
        let digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        let mut end = i + digits;
        // An ID number whose check character is X.
        let id_with_x = digits == 17 && matches!(bytes.get(end), Some(b'X' | b'x'));
        if id_with_x {
            end += 1;
        }
        if bytes.get(end).is_some_and(|b| is_word_byte(*b)) {
            // Part of a longer token: skip the whole run.
            i = end;
            continue;
        }
        let run = &text[i..end];
        let masked = match run.len() {
            18 if id_with_x || digits == 18 => Some(mask(run, 3, 4)),
            11 if is_mobile(run) => Some(mask(run, 3, 4)),
            12..=19 if !id_with_x => Some(mask(run, 0, 4)),
            _ => None,
        };
        if let Some(masked) = masked {
            out.push_str(&text[copied..i]);
            out.push_str(&masked);
            copied = end;
        }
        i = end;
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// Whether `text` holds anything [`redact`] would mask.
pub fn contains_personal_number(text: &str) -> bool {
    matches!(redact(text), Cow::Owned(_))
}

/// Cheap pre-check: no run of 11 digits, nothing to mask.
fn has_long_digit_run(bytes: &[u8]) -> bool {
    let mut run = 0;
    for b in bytes {
        if b.is_ascii_digit() {
            run += 1;
            if run >= 11 {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_mobile(run: &str) -> bool {
    let b = run.as_bytes();
    b[0] == b'1' && (b'3'..=b'9').contains(&b[1])
}

/// The length of a UUID (`8-4-4-4-12` hex digits) starting at `i` as a token of its own.
fn uuid_at(bytes: &[u8], i: usize) -> Option<usize> {
    const LEN: usize = 36;
    if i > 0 && is_word_byte(bytes[i - 1]) {
        return None;
    }
    let candidate = bytes.get(i..i + LEN)?;
    let shaped = candidate.iter().enumerate().all(|(k, b)| match k {
        8 | 13 | 18 | 23 => *b == b'-',
        _ => b.is_ascii_hexdigit(),
    });
    let ends = bytes.get(i + LEN).is_none_or(|b| !is_word_byte(*b));
    (shaped && ends).then_some(LEN)
}

/// Keeps `head` leading and `tail` trailing characters of an ASCII run and stars the rest.
fn mask(run: &str, head: usize, tail: usize) -> String {
    let len = run.len();
    let mut out = String::with_capacity(len);
    out.push_str(&run[..head]);
    out.extend(std::iter::repeat_n('*', len - head - tail));
    out.push_str(&run[len - tail..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_numbers_are_masked_with_a_digit_or_x_check_character() {
        assert_eq!(redact("身份证号440701199003071234已存在"), "身份证号440***********1234已存在");
        assert_eq!(redact("id=11010519491231002X."), "id=110***********002X.");
        assert_eq!(redact("11010519491231002x"), "110***********002x");
    }

    #[test]
    fn mobile_numbers_are_masked_but_other_eleven_digit_numbers_are_not() {
        assert_eq!(redact("联系电话：13812345678"), "联系电话：138****5678");
        assert_eq!(redact("call 19912345678, or 15000000000"), "call 199****5678, or 150****0000");
        assert_eq!(redact("seq 12345678901"), "seq 12345678901", "not a mobile prefix");
    }

    #[test]
    fn account_numbers_keep_only_their_last_four_digits() {
        assert_eq!(redact("账号 6222021234567890123 开户行"), "账号 ***************0123 开户行");
        assert_eq!(redact("acct:123456789012"), "acct:********9012");
        assert_eq!(redact("+8613812345678"), "+*********5678", "a mobile with its country code");
        assert_eq!(redact("old id 440701900307123"), "old id ***********7123");
    }

    #[test]
    fn every_number_in_a_message_is_masked() {
        let text = "expert 440701199003071234 phone 13812345678 account 6222021234567890";
        let masked = redact(text);
        assert_eq!(masked, "expert 440***********1234 phone 138****5678 account ************7890");
        assert!(!contains_personal_number(&masked));
    }

    #[test]
    fn short_numbers_tokens_and_identifiers_are_left_alone() {
        for text in [
            "",
            "plain text 中文",
            "2026-11-29T10:00:00.123456Z seq 42 took 1234567 ns",
            "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7",
            "hash 0123456789012345678901234567890123456789abcdef0123456789abcdef",
            "institution 0192a5c3-7e4b-7c1a-9b3d-123456789012",
            "token abc1234567890123def",
            "20 digits 12345678901234567890",
            "credit code 91110108551385082Q",
        ] {
            assert!(matches!(redact(text), Cow::Borrowed(_)), "{text:?} became {:?}", redact(text));
        }
    }

    #[test]
    fn the_unchanged_case_does_not_allocate_and_multibyte_text_survives() {
        assert!(matches!(redact("无个人号码 only 123"), Cow::Borrowed(_)));
        assert_eq!(redact("张三13812345678李四"), "张三138****5678李四");
    }
}
