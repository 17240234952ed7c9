//! 征集通知 — a public recruitment call (article 7(一)): at least two are published a year.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use supervision_kit::{SpecialtyCode, auth::Actor};

/// The service's opaque id of a call: `cal_` and 32 lower-case hex digits of a UUIDv7.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(String);

impl CallId {
    const PREFIX: &'static str = "cal_";

    pub fn generate() -> Self {
        Self(supervision_kit::vocab::new_prefixed_id(Self::PREFIX))
    }

    pub fn parse(s: &str) -> Option<Self> {
        supervision_kit::vocab::is_prefixed_id(s, Self::PREFIX).then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStatus {
    Draft,
    Published,
    Closed,
    Cancelled,
}

impl CallStatus {
    pub fn code(self) -> &'static str {
        match self {
            Self::Draft => "DRAFT",
            Self::Published => "PUBLISHED",
            Self::Closed => "CLOSED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// Whether the public (experts, applicants) may see a call in this state.
    pub fn is_public(self) -> bool {
        matches!(self, Self::Published | Self::Closed)
    }

    pub fn from_code(code: &str) -> Option<Self> {
        [Self::Draft, Self::Published, Self::Closed, Self::Cancelled].into_iter().find(|s| s.code() == code)
    }
}

/// A material applicants must attach. Kinds, categories and conditions are kept as their
/// contract names (`MATERIAL_KIND_...`), already checked by the request conversion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequiredMaterial {
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub category: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub condition: String,
    pub description: String,
    pub mandatory: bool,
}

/// A validated request to draft a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCall {
    pub year: i32,
    pub title: String,
    pub body: String,
    /// Article 5 categories sought (contract names); empty for all eleven.
    pub categories: Vec<String>,
    pub specialties: Vec<SpecialtyCode>,
    pub industries: Vec<String>,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub required_materials: Vec<RequiredMaterial>,
}

/// A call as recruitment keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub id: CallId,
    pub details: NewCall,
    pub status: CallStatus,
    /// The policy edition in force when it was published; 0 while a draft.
    pub edition_number: i32,
    pub created_by: Actor,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Call {
    /// A new draft: nothing is public until the first publication is recorded.
    pub fn draft(details: NewCall, created_by: Actor, now: DateTime<Utc>) -> Self {
        Self {
            id: CallId::generate(),
            details,
            status: CallStatus::Draft,
            edition_number: 0,
            created_by,
            created_at: now,
            updated_at: now,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallFilter {
    pub year: Option<i32>,
    pub status: Option<CallStatus>,
    /// Only calls the public may see ([`CallStatus::is_public`]).
    pub public_only: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_round_trip() {
        let id = CallId::generate();
        assert_eq!(CallId::parse(id.as_str()), Some(id));
        assert_eq!(CallId::parse("ins_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f"), None);
    }

    #[test]
    fn a_new_call_is_a_draft_without_an_edition() {
        let now = Utc::now();
        let details = NewCall {
            year: 2026,
            title: "t".into(),
            body: "b".into(),
            categories: vec![],
            specialties: vec![],
            industries: vec![],
            window_start: now,
            window_end: now + chrono::Duration::days(30),
            required_materials: vec![],
        };
        let actor = Actor { subject: "a".into(), role: "CITY_ADMIN".into(), bureau: None };
        let call = Call::draft(details, actor, now);
        assert_eq!(call.status, CallStatus::Draft);
        assert_eq!(call.edition_number, 0);
    }
}
