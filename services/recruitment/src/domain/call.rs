//! 征集通知 — a public recruitment call (article 7(一)): at least two are published a year.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
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

/// The channels article 7(一) names, kept as their contract names.
pub const PUBLICATION_CHANNELS: [&str; 3] = [
    "PUBLICATION_CHANNEL_WECHAT_OFFICIAL_ACCOUNT",
    "PUBLICATION_CHANNEL_OFFICIAL_WEBSITE",
    "PUBLICATION_CHANNEL_NEWS_MEDIA",
];

/// A validated publication to record: where, on which day, at which address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPublication {
    /// The contract name of the channel (one of [`PUBLICATION_CHANNELS`]).
    pub channel: String,
    pub publish_date: NaiveDate,
    /// A URL or a reference such as "江门日报 2025-03-04 第 A3 版".
    pub address: String,
}

/// One recorded publication of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    pub details: NewPublication,
    pub recorded_by: Actor,
    pub recorded_at: DateTime<Utc>,
}

/// Why a call cannot make a transition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("call {id} is {status}; {action} needs a call that is {needed}")]
pub struct CallStateError {
    pub id: String,
    pub status: &'static str,
    pub action: &'static str,
    pub needed: &'static str,
}

/// A call as recruitment keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub id: CallId,
    pub details: NewCall,
    pub status: CallStatus,
    /// The policy edition in force when it was published; 0 while a draft.
    pub edition_number: i32,
    /// Every publication, in recording order.
    pub publications: Vec<Publication>,
    /// The day of the first publication: the day the call counts for article 7(一).
    pub first_published_on: Option<NaiveDate>,
    /// Why it was closed or cancelled.
    pub status_reason: String,
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
            publications: Vec::new(),
            first_published_on: None,
            status_reason: String::new(),
            created_by,
            created_at: now,
            updated_at: now,
        }
    }
}

impl Call {
    fn refuse(&self, action: &'static str, needed: &'static str) -> CallStateError {
        CallStateError { id: self.id.to_string(), status: self.status.code(), action, needed }
    }

    /// Records a publication on a draft or published call. The first one publishes the call:
    /// it becomes PUBLISHED and takes `edition_number`, the edition in force on the day.
    pub fn record_publication(
        &mut self,
        publication: NewPublication,
        edition_number: i32,
        by: Actor,
        now: DateTime<Utc>,
    ) -> Result<(), CallStateError> {
        if !matches!(self.status, CallStatus::Draft | CallStatus::Published) {
            return Err(self.refuse("recording a publication", "DRAFT or PUBLISHED"));
        }
        if self.status == CallStatus::Draft {
            self.status = CallStatus::Published;
            self.edition_number = edition_number;
        }
        let day = publication.publish_date;
        if self.first_published_on.is_none_or(|first| day < first) {
            self.first_published_on = Some(day);
        }
        self.publications.push(Publication { details: publication, recorded_by: by, recorded_at: now });
        self.updated_at = now;
        Ok(())
    }

    /// Closes a published call to new applications; applications already submitted continue.
    pub fn close(&mut self, reason: String, now: DateTime<Utc>) -> Result<(), CallStateError> {
        if self.status != CallStatus::Published {
            return Err(self.refuse("closing", "PUBLISHED"));
        }
        self.status = CallStatus::Closed;
        self.status_reason = reason;
        self.updated_at = now;
        Ok(())
    }

    /// Abandons a draft; a call that was published stays on the record and can only be closed.
    pub fn cancel(&mut self, reason: String, now: DateTime<Utc>) -> Result<(), CallStateError> {
        if self.status != CallStatus::Draft {
            return Err(self.refuse("cancelling", "DRAFT"));
        }
        self.status = CallStatus::Cancelled;
        self.status_reason = reason;
        self.updated_at = now;
        Ok(())
    }

    /// Whether an application may be submitted at `now`: the call is published (not closed)
    /// and `now` lies in its window (the end exclusive).
    pub fn accepts_submissions_at(&self, now: DateTime<Utc>) -> bool {
        self.status == CallStatus::Published && self.details.window_start <= now && now < self.details.window_end
    }
}

/// A year's calls against article 7(一): distinct calls whose first publication fell in the
/// year, however many channels each appeared on (DOMAIN.md A6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compliance {
    pub year: i32,
    pub call_ids: Vec<String>,
    pub required: u32,
    pub warnings: Vec<String>,
}

impl Compliance {
    /// Judges `call_ids` (first published in `year`) on `today`: after 1 July with none, after
    /// 1 October with fewer than required, or a past year short of them, each earns a warning.
    pub fn judge(year: i32, call_ids: Vec<String>, required: u32, today: NaiveDate) -> Self {
        let count = u32::try_from(call_ids.len()).unwrap_or(u32::MAX);
        let mut warnings = Vec::new();
        if count < required {
            let day = |m, d| NaiveDate::from_ymd_opt(year, m, d).unwrap_or(NaiveDate::MAX);
            if today > day(12, 31) {
                warnings.push(format!(
                    "{year} ended with {count} call(s) published; article 7(一) requires at least {required}"
                ));
            } else if today >= day(10, 1) {
                warnings.push(format!(
                    "only {count} call(s) published in {year} by {today}; article 7(一) requires at least {required} \
                     before the year ends"
                ));
            } else if today >= day(7, 1) && count == 0 {
                warnings.push(format!(
                    "no call published in {year} by {today}; article 7(一) requires at least {required} this year"
                ));
            }
        }
        Self { year, call_ids, required, warnings }
    }

    pub fn met(&self) -> bool {
        self.call_ids.len() >= self.required as usize
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

    fn draft() -> Call {
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
        Call::draft(details, Actor { subject: "a".into(), role: "CITY_ADMIN".into(), bureau: None }, now)
    }

    fn publication(day: u32) -> NewPublication {
        NewPublication {
            channel: PUBLICATION_CHANNELS[0].into(),
            publish_date: NaiveDate::from_ymd_opt(2026, 3, day).unwrap(),
            address: "https://example.org/1".into(),
        }
    }

    #[test]
    fn the_first_publication_publishes_and_stamps_the_edition() {
        let mut call = draft();
        let by = call.created_by.clone();
        call.record_publication(publication(4), 1, by.clone(), Utc::now()).unwrap();
        assert_eq!((call.status, call.edition_number), (CallStatus::Published, 1));
        call.record_publication(publication(2), 2, by, Utc::now()).unwrap();
        assert_eq!(call.edition_number, 1, "a later publication keeps the edition");
        assert_eq!(call.first_published_on, NaiveDate::from_ymd_opt(2026, 3, 2));
        assert_eq!(call.publications.len(), 2);
        assert!(call.cancel("x".into(), Utc::now()).is_err(), "a published call is not cancelled");
        call.close("enough".into(), Utc::now()).unwrap();
        assert!(call.close("again".into(), Utc::now()).is_err());
        assert!(!call.accepts_submissions_at(Utc::now()));
    }

    #[test]
    fn compliance_counts_calls_and_warns_late_in_the_year() {
        let d = |m, day| NaiveDate::from_ymd_opt(2026, m, day).unwrap();
        assert!(Compliance::judge(2026, vec![], 2, d(6, 30)).warnings.is_empty());
        assert_eq!(Compliance::judge(2026, vec![], 2, d(7, 1)).warnings.len(), 1);
        assert!(Compliance::judge(2026, vec!["a".into()], 2, d(9, 30)).warnings.is_empty());
        assert_eq!(Compliance::judge(2026, vec!["a".into()], 2, d(10, 1)).warnings.len(), 1);
        let met = Compliance::judge(2026, vec!["a".into(), "b".into()], 2, d(12, 1));
        assert!(met.met() && met.warnings.is_empty());
    }
}
