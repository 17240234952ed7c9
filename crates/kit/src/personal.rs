//! Personal data at rest and in answers: ID numbers, bank accounts and phone numbers are
//! encrypted with a deployment key, found again through a keyed blind index, and masked in
//! responses and audit entries except for the roles that need them (ARCHITECTURE.md).
//!
//! The deployment key (32 random bytes, 64 hex digits in a file) never reaches the database;
//! two keys are derived from it with HMAC-SHA256, one for AES-256-GCM and one for the index,
//! so a leaked index reveals nothing about the cipher key. A database dump holds neither plain
//! numbers nor anything that can be reversed without the key.

use std::{fmt, path::Path};

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Marks the stored format, so a later scheme can be told apart.
const CIPHERTEXT_PREFIX: &str = "pd1:";

#[derive(Debug, thiserror::Error)]
pub enum PersonalDataError {
    #[error("cannot read the personal-data key {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the personal-data key must be 64 hex digits (32 random bytes)")]
    BadKey,
    #[error("a stored value is not in the personal-data format")]
    BadCiphertext,
    #[error("a stored value does not decrypt with this key")]
    Decrypt,
}

/// The deployment's personal-data key.
#[derive(Clone)]
pub struct PersonalDataKey {
    cipher_key: [u8; 32],
    index_key: [u8; 32],
}

impl fmt::Debug for PersonalDataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PersonalDataKey(..)")
    }
}

fn derive(master: &[u8], purpose: &str) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(master).expect("HMAC takes any key length");
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().into()
}

impl PersonalDataKey {
    /// Reads a key file holding 64 hex digits (surrounding whitespace ignored).
    pub fn from_file(path: &Path) -> Result<Self, PersonalDataError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| PersonalDataError::Read { path: path.display().to_string(), source })?;
        Self::from_hex(text.trim())
    }

    pub fn from_hex(hex_key: &str) -> Result<Self, PersonalDataError> {
        let master = hex::decode(hex_key).map_err(|_| PersonalDataError::BadKey)?;
        if master.len() != 32 {
            return Err(PersonalDataError::BadKey);
        }
        Ok(Self {
            cipher_key: derive(&master, "supervision personal data: AES-256-GCM"),
            index_key: derive(&master, "supervision personal data: blind index"),
        })
    }

    /// A new random key as 64 hex digits (for `supctl keys init` and tests).
    pub fn generate_hex() -> String {
        hex::encode(rand::random::<[u8; 32]>())
    }

    /// Encrypts `plain` with a fresh random nonce: `pd1:` and base64 of nonce and ciphertext.
    pub fn encrypt(&self, plain: &str) -> String {
        let cipher = Aes256Gcm::new(&self.cipher_key.into());
        let nonce_bytes: [u8; 12] = rand::random();
        let sealed = cipher
            .encrypt(&Nonce::from(nonce_bytes), plain.as_bytes())
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut stored = nonce_bytes.to_vec();
        stored.extend_from_slice(&sealed);
        format!("{CIPHERTEXT_PREFIX}{}", STANDARD.encode(stored))
    }

    pub fn decrypt(&self, stored: &str) -> Result<String, PersonalDataError> {
        let encoded = stored.strip_prefix(CIPHERTEXT_PREFIX).ok_or(PersonalDataError::BadCiphertext)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| PersonalDataError::BadCiphertext)?;
        if bytes.len() < 12 + 16 {
            return Err(PersonalDataError::BadCiphertext);
        }
        let (nonce, sealed) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| PersonalDataError::BadCiphertext)?;
        let cipher = Aes256Gcm::new(&self.cipher_key.into());
        let plain = cipher.decrypt(&Nonce::from(nonce), sealed).map_err(|_| PersonalDataError::Decrypt)?;
        String::from_utf8(plain).map_err(|_| PersonalDataError::Decrypt)
    }

    /// Encrypts a file's bytes with a fresh random nonce: the nonce (12 bytes) and the AES-256-GCM
    /// ciphertext with its tag (16 bytes), so 28 bytes longer than `plain`. `context` (a
    /// document's id, say) is authenticated, not stored: the bytes decrypt only with the same
    /// context, so a stored file cannot be moved to another row unnoticed.
    pub fn encrypt_bytes(&self, plain: &[u8], context: &[u8]) -> Vec<u8> {
        let cipher = Aes256Gcm::new(&self.cipher_key.into());
        let nonce_bytes: [u8; 12] = rand::random();
        let sealed = cipher
            .encrypt(&Nonce::from(nonce_bytes), Payload { msg: plain, aad: context })
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut stored = Vec::with_capacity(nonce_bytes.len() + sealed.len());
        stored.extend_from_slice(&nonce_bytes);
        stored.extend_from_slice(&sealed);
        stored
    }

    /// The bytes `encrypt_bytes` sealed with this key and `context`.
    pub fn decrypt_bytes(&self, stored: &[u8], context: &[u8]) -> Result<Vec<u8>, PersonalDataError> {
        if stored.len() < 12 + 16 {
            return Err(PersonalDataError::BadCiphertext);
        }
        let (nonce, sealed) = stored.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| PersonalDataError::BadCiphertext)?;
        let cipher = Aes256Gcm::new(&self.cipher_key.into());
        cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: sealed, aad: context })
            .map_err(|_| PersonalDataError::Decrypt)
    }

    /// The keyed blind index of `value`: equal values give equal indexes, and without the key
    /// the index cannot be computed for a guessed value.
    pub fn blind_index(&self, value: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.index_key).expect("HMAC takes any key length");
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// A document number as responses and audit entries show it: only the last 4 characters of an
/// 18-character number (`**************1234`), the last 2 of a shorter one. Showing more is
/// unsafe: the first 6 digits of a resident ID are the place of registration and the next 8 the
/// birth date, so a wider mask plus a birth date shown elsewhere leaves a handful of candidates
/// that the check character narrows to one.
pub fn mask_document(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    mask_keep_last(&chars, if chars.len() == 18 { 4 } else { 2 })
}

/// A mobile number as `138****1234`.
pub fn mask_mobile(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() == 11 {
        format!("{}****{}", chars[..3].iter().collect::<String>(), chars[7..].iter().collect::<String>())
    } else {
        mask_keep_last(&chars, 2)
    }
}

/// A bank account as its last 4 digits after `*`s.
pub fn mask_account(number: &str) -> String {
    mask_keep_last(&number.chars().collect::<Vec<_>>(), 4)
}

/// An e-mail address as `l***@example.com`.
pub fn mask_email(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => format!("{}***@{domain}", local.chars().next().unwrap_or('*')),
        None => "***".into(),
    }
}

fn mask_keep_last(chars: &[char], keep: usize) -> String {
    let keep = keep.min(chars.len() / 2);
    let tail: String = chars[chars.len() - keep..].iter().collect();
    format!("{}{tail}", "*".repeat(chars.len() - keep))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PersonalDataKey {
        PersonalDataKey::from_hex(&PersonalDataKey::generate_hex()).unwrap()
    }

    #[test]
    fn values_round_trip_and_never_encrypt_the_same_way_twice() {
        let key = key();
        let a = key.encrypt("11010519491231002X");
        let b = key.encrypt("11010519491231002X");
        assert_ne!(a, b, "a fresh nonce each time");
        assert!(!a.contains("19491231"));
        assert_eq!(key.decrypt(&a).unwrap(), "11010519491231002X");
    }

    #[test]
    fn another_key_cannot_decrypt_or_match_the_index() {
        let (one, two) = (key(), key());
        let stored = one.encrypt("6222021234567890123");
        assert!(matches!(two.decrypt(&stored), Err(PersonalDataError::Decrypt)));
        assert_eq!(one.blind_index("x"), one.blind_index("x"));
        assert_ne!(one.blind_index("x"), two.blind_index("x"));
    }

    #[test]
    fn tampered_or_foreign_values_are_refused() {
        let key = key();
        let mut stored = key.encrypt("13800001234");
        stored.pop();
        stored.push('A');
        assert!(key.decrypt(&stored).is_err());
        assert!(matches!(key.decrypt("plain text"), Err(PersonalDataError::BadCiphertext)));
    }

    #[test]
    fn files_round_trip_only_with_their_key_and_context() {
        let (one, two) = (key(), key());
        let plain = b"%PDF-1.7 scan of 11010519491231002X";
        let a = one.encrypt_bytes(plain, b"doc_1");
        assert_ne!(a, one.encrypt_bytes(plain, b"doc_1"), "a fresh nonce each time");
        assert_eq!(a.len(), plain.len() + 28);
        assert!(!a.windows(8).any(|w| w == b"19491231"));
        assert_eq!(one.decrypt_bytes(&a, b"doc_1").unwrap(), plain);
        assert!(matches!(one.decrypt_bytes(&a, b"doc_2"), Err(PersonalDataError::Decrypt)), "another row");
        assert!(matches!(two.decrypt_bytes(&a, b"doc_1"), Err(PersonalDataError::Decrypt)), "another key");
        let mut tampered = a.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(one.decrypt_bytes(&tampered, b"doc_1").is_err());
        assert!(matches!(one.decrypt_bytes(b"short", b"doc_1"), Err(PersonalDataError::BadCiphertext)));
    }

    #[test]
    fn keys_must_be_32_bytes_of_hex() {
        assert!(PersonalDataKey::from_hex("abcd").is_err());
        assert!(PersonalDataKey::from_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn masks_show_only_what_the_contract_allows() {
        assert_eq!(mask_document("11010519491231002X"), "**************002X");
        assert_eq!(mask_document("E12345678"), "*******78", "a passport keeps its last 2");
        assert_eq!(mask_document("H1234567"), "******67");
        assert_eq!(mask_mobile("13812345678"), "138****5678");
        assert_eq!(mask_account("6222021234567890123"), "***************0123");
        assert_eq!(mask_email("li.ming@example.com"), "l***@example.com");
    }
}
