//! How to reach a person and where to pay them: mobile, e-mail, postal address and bank account,
//! as experts and applicants give them. All of it is personal data (see `personal`).

use supervision_proto::common;

use crate::{
    FieldViolations,
    convert::{optional_text, required_text},
};

/// How to reach a person; plain in memory only.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Contact {
    /// 11 digits starting with 1.
    pub mobile: String,
    /// Empty when not given.
    pub email: String,
    /// Empty when not given.
    pub address: String,
}

/// The account fees are paid into, in the person's own name (DOMAIN.md 10.9); plain in memory only.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BankAccount {
    pub holder_name: String,
    pub bank_name: String,
    pub branch_name: String,
    /// Digits only.
    pub account_number: String,
}

/// Whether `mobile` (spaces and hyphens dropped) is a mainland mobile number: 11 digits starting
/// with 1. Returns the normalised number.
pub fn parse_mobile(mobile: &str) -> Option<String> {
    let digits: String = mobile.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    (digits.len() == 11 && digits.starts_with('1') && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// Whether `email` has the shape of an address: one `@`, a local part of at most 64 characters,
/// a domain with a dot and no empty label, no spaces; at most 254 characters. The domain is
/// lower-cased.
pub fn parse_email(email: &str) -> Option<String> {
    let email = email.trim();
    if email.chars().count() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let (local, domain) = email.split_once('@')?;
    let shaped = !local.is_empty()
        && local.chars().count() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && domain.split('.').all(|label| !label.is_empty());
    shaped.then(|| format!("{local}@{}", domain.to_lowercase()))
}

/// A bank account number: digits only (spaces dropped), 8 to 30 of them.
pub fn parse_account_number(number: &str) -> Option<String> {
    let digits: String = number.chars().filter(|c| !c.is_whitespace()).collect();
    ((8..=30).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// Contact details from a request: the mobile is required, e-mail and address optional; every
/// problem named under `field`.
pub fn contact(
    raw: Option<&common::ContactDetails>,
    field: &str,
    max_address_chars: usize,
    v: &mut FieldViolations,
) -> Option<Contact> {
    let Some(raw) = raw else {
        v.add(field, "is required: at least the mobile number");
        return None;
    };
    let mobile = parse_mobile(&raw.mobile);
    if mobile.is_none() {
        v.add(format!("{field}.mobile"), "must be a mainland mobile number: 11 digits starting with 1");
    }
    let email = if raw.email.trim().is_empty() {
        Some(String::new())
    } else {
        let email = parse_email(&raw.email);
        if email.is_none() {
            v.add(format!("{field}.email"), "is not an e-mail address");
        }
        email
    };
    let address = optional_text(&raw.address, &format!("{field}.address"), max_address_chars, v);
    Some(Contact { mobile: mobile?, email: email?, address })
}

/// A bank account from a request, or `None` when every field is empty (no account given).
pub fn bank_account(
    raw: Option<&common::BankAccount>,
    field: &str,
    max_name_chars: usize,
    max_bank_chars: usize,
    v: &mut FieldViolations,
) -> Option<BankAccount> {
    let raw = raw.filter(|a| {
        ![&a.holder_name, &a.bank_name, &a.branch_name, &a.account_number].iter().all(|s| s.trim().is_empty())
    })?;
    let holder_name = required_text(&raw.holder_name, &format!("{field}.holder_name"), max_name_chars, v);
    let bank_name = required_text(&raw.bank_name, &format!("{field}.bank_name"), max_bank_chars, v);
    let branch_name = optional_text(&raw.branch_name, &format!("{field}.branch_name"), max_bank_chars, v);
    let account_number = parse_account_number(&raw.account_number);
    if account_number.is_none() {
        v.add(format!("{field}.account_number"), "must be 8 to 30 digits");
    }
    Some(BankAccount { holder_name, bank_name, branch_name, account_number: account_number? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mobiles_are_eleven_digits_starting_with_1() {
        assert_eq!(parse_mobile("138 1234-5678").as_deref(), Some("13812345678"));
        for bad in ["", "23812345678", "1381234567", "138123456789", "1381234567a"] {
            assert!(parse_mobile(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn e_mail_addresses_are_checked_for_shape() {
        assert_eq!(parse_email(" li.ming@Example.COM ").as_deref(), Some("li.ming@example.com"));
        for bad in ["li.ming", "@example.com", "li@example", "li@@example.com", "li ming@example.com", "li@a..cn"] {
            assert!(parse_email(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn account_numbers_are_digits() {
        assert_eq!(parse_account_number("6222 0212 3456 7890 123").as_deref(), Some("6222021234567890123"));
        assert!(parse_account_number("6222-0212").is_none());
        assert!(parse_account_number("1234567").is_none());
    }

    #[test]
    fn an_empty_account_is_no_account_and_a_bad_one_is_named() {
        let mut v = FieldViolations::new();
        assert_eq!(bank_account(Some(&common::BankAccount::default()), "bank_account", 50, 100, &mut v), None);
        assert!(v.is_empty());
        let bad =
            common::BankAccount { holder_name: "李明".into(), account_number: "12".into(), ..Default::default() };
        assert_eq!(bank_account(Some(&bad), "bank_account", 50, 100, &mut v), None);
        assert!(v.check().is_err());
    }
}
