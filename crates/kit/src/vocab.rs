//! The shared vocabulary of `supervision.common.v1` as domain types: bureaus and paging.

use std::fmt;

use supervision_proto::common;

/// 人社局 — a bureau of the Jiangmen human-resources system (DOMAIN.md D13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bureau {
    City,
    Pengjiang,
    Jianghai,
    Xinhui,
    Taishan,
    Kaiping,
    Heshan,
    Enping,
}

impl Bureau {
    pub const ALL: [Bureau; 8] = [
        Bureau::City,
        Bureau::Pengjiang,
        Bureau::Jianghai,
        Bureau::Xinhui,
        Bureau::Taishan,
        Bureau::Kaiping,
        Bureau::Heshan,
        Bureau::Enping,
    ];

    /// The GB/T 2260 division code other systems exchange.
    pub fn division_code(self) -> &'static str {
        match self {
            Bureau::City => "440700",
            Bureau::Pengjiang => "440703",
            Bureau::Jianghai => "440704",
            Bureau::Xinhui => "440705",
            Bureau::Taishan => "440781",
            Bureau::Kaiping => "440783",
            Bureau::Heshan => "440784",
            Bureau::Enping => "440785",
        }
    }

    pub fn from_division_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.division_code() == code)
    }

    pub fn chinese_name(self) -> &'static str {
        match self {
            Bureau::City => "江门市",
            Bureau::Pengjiang => "蓬江区",
            Bureau::Jianghai => "江海区",
            Bureau::Xinhui => "新会区",
            Bureau::Taishan => "台山市",
            Bureau::Kaiping => "开平市",
            Bureau::Heshan => "鹤山市",
            Bureau::Enping => "恩平市",
        }
    }

    /// Whether this is one of the seven county-level bureaus rather than the city's.
    pub fn is_county(self) -> bool {
        self != Bureau::City
    }

    /// The proto value; `None` for `BUREAU_CODE_UNSPECIFIED` or an unknown number.
    pub fn from_proto(value: i32) -> Option<Self> {
        use common::BureauCode as P;
        Some(match P::try_from(value).ok()? {
            P::Unspecified => return None,
            P::JiangmenCity => Bureau::City,
            P::Pengjiang => Bureau::Pengjiang,
            P::Jianghai => Bureau::Jianghai,
            P::Xinhui => Bureau::Xinhui,
            P::Taishan => Bureau::Taishan,
            P::Kaiping => Bureau::Kaiping,
            P::Heshan => Bureau::Heshan,
            P::Enping => Bureau::Enping,
        })
    }

    pub fn to_proto(self) -> common::BureauCode {
        use common::BureauCode as P;
        match self {
            Bureau::City => P::JiangmenCity,
            Bureau::Pengjiang => P::Pengjiang,
            Bureau::Jianghai => P::Jianghai,
            Bureau::Xinhui => P::Xinhui,
            Bureau::Taishan => P::Taishan,
            Bureau::Kaiping => P::Kaiping,
            Bureau::Heshan => P::Heshan,
            Bureau::Enping => P::Enping,
        }
    }
}

impl fmt::Display for Bureau {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.division_code(), self.chinese_name())
    }
}

/// A code of the national occupational classification (职业分类大典): a major group `4`, or
/// down to an occupation `4-07-05-01`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SpecialtyCode(String);

impl SpecialtyCode {
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('-');
        let major = parts.next()?;
        let major_ok = major.len() == 1 && matches!(major.as_bytes()[0], b'1'..=b'8');
        let rest: Vec<&str> = parts.collect();
        let rest_ok = rest.len() <= 3 && rest.iter().all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()));
        (major_ok && rest_ok).then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `s` is an id of the system's shape: `prefix` (such as `ins_`) followed by the 32
/// lower-case hex digits of a UUIDv7, so ids sort in creation order and carry nothing personal.
pub fn is_prefixed_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// A new id of the system's shape with `prefix`.
pub fn new_prefixed_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::now_v7().simple())
}

/// How staff received what they enter for an expert or applicant (D16); the received time, not
/// the time of entry, decides timeliness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnBehalf {
    /// The contract name of the entry channel (`ENTRY_CHANNEL_PHONE`, ...).
    pub channel: String,
    pub received_at: chrono::DateTime<chrono::Utc>,
    pub note: String,
}

/// A validated page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub size: u32,
    /// The last key of the previous page; `None` for the first page.
    pub after: Option<String>,
}

impl Page {
    /// The same page asking for one more item, to learn whether another page follows.
    pub fn probe(&self) -> Page {
        Page { size: self.size + 1, after: self.after.clone() }
    }

    /// Cuts the answer to a [`Page::probe`] down to this page, and gives the next page's token
    /// (the key of the last item kept) when more items follow.
    pub fn finish<T>(&self, mut items: Vec<T>, key: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
        let size = self.size as usize;
        if items.len() > size {
            items.truncate(size);
            let next = items.last().map(key);
            (items, next)
        } else {
            (items, None)
        }
    }

    pub const DEFAULT_SIZE: u32 = 50;
    pub const MAX_SIZE: u32 = 500;

    /// Checks a proto page request; `page_token` must satisfy `is_valid_token` (typically "is an
    /// id of the listed kind"), and problems are named under `field` (such as `page`).
    pub fn parse(
        request: Option<&common::PageRequest>,
        field: &str,
        is_valid_token: impl Fn(&str) -> bool,
        violations: &mut crate::FieldViolations,
    ) -> Self {
        let Some(request) = request else {
            return Self { size: Self::DEFAULT_SIZE, after: None };
        };
        let size = match u32::try_from(request.page_size) {
            Ok(0) => Self::DEFAULT_SIZE,
            Ok(n) if n <= Self::MAX_SIZE => n,
            _ => {
                violations.add(format!("{field}.page_size"), format!("must be between 0 and {}", Self::MAX_SIZE));
                Self::DEFAULT_SIZE
            }
        };
        let after = if request.page_token.is_empty() {
            None
        } else if is_valid_token(&request.page_token) {
            Some(request.page_token.clone())
        } else {
            violations.add(format!("{field}.page_token"), "is not a token this list returned");
            None
        };
        Self { size, after }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bureau_round_trips_through_proto_and_division_code() {
        for b in Bureau::ALL {
            assert_eq!(Bureau::from_proto(b.to_proto() as i32), Some(b));
            assert_eq!(Bureau::from_division_code(b.division_code()), Some(b));
        }
        assert_eq!(Bureau::from_proto(0), None);
        assert_eq!(Bureau::from_proto(99), None);
    }

    #[test]
    fn only_the_city_is_not_a_county() {
        assert_eq!(Bureau::ALL.iter().filter(|b| !b.is_county()).count(), 1);
        assert!(!Bureau::City.is_county());
    }

    #[test]
    fn specialty_codes_follow_the_classification_pattern() {
        for ok in ["4", "4-07", "4-07-05", "4-07-05-01", "8-01"] {
            assert!(SpecialtyCode::parse(ok).is_some(), "{ok}");
        }
        for bad in ["", "9", "0-01", "4-7", "4-07-05-01-02", "4-0a", "4--07"] {
            assert!(SpecialtyCode::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn page_sizes_are_bounded() {
        let mut v = crate::FieldViolations::new();
        let req = common::PageRequest { page_size: 501, page_token: String::new() };
        Page::parse(Some(&req), "page", |_| true, &mut v);
        assert!(v.check().is_err());
        let mut v = crate::FieldViolations::new();
        let req = common::PageRequest { page_size: 0, page_token: "x".into() };
        let page = Page::parse(Some(&req), "page", |t| t == "x", &mut v);
        assert!(v.is_empty());
        assert_eq!(page, Page { size: 50, after: Some("x".into()) });
    }
}
