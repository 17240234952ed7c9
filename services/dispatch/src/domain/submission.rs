//! 意见建议、举报线索、违规行为 — what experts feed back to the city bureau (article 8(二)(三)),
//! and the counties' reports to the city (D21). Every submission goes to the city bureau.

use std::fmt;

use chrono::{DateTime, Utc};
use supervision_kit::{
    Bureau, Caller, Role,
    auth::Actor,
    vocab::OnBehalf,
    vocab::{is_prefixed_id, new_prefixed_id},
};

/// The service's opaque id of a submission: `sub_` and 32 lower-case hex digits of a UUIDv7.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubmissionId(String);

impl SubmissionId {
    const PREFIX: &'static str = "sub_";

    pub fn generate() -> Self {
        Self(new_prefixed_id(Self::PREFIX))
    }

    pub fn parse(s: &str) -> Option<Self> {
        is_prefixed_id(s, Self::PREFIX).then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubmissionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmissionKind {
    Opinion,
    TipOff,
    Violation,
    PolicyProblem,
    CountyReport,
}

impl SubmissionKind {
    pub const ALL: [Self; 5] = [Self::Opinion, Self::TipOff, Self::Violation, Self::PolicyProblem, Self::CountyReport];

    pub fn code(self) -> &'static str {
        match self {
            Self::Opinion => "OPINION",
            Self::TipOff => "TIP_OFF",
            Self::Violation => "VIOLATION",
            Self::PolicyProblem => "POLICY_PROBLEM",
            Self::CountyReport => "COUNTY_REPORT",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// Who a submission comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitter {
    /// An expert, directly or through staff who received it (D16).
    Expert { expert_id: String, on_behalf: Option<OnBehalf> },
    /// A county bureau reporting to the city (D21).
    County(Bureau),
}

/// A validated submission, before the caller's right to make it is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubmission {
    pub kind: SubmissionKind,
    pub submitter: Submitter,
    /// The contract name of the source party (`SOURCE_PARTY_...`), or empty.
    pub source_party: String,
    pub institution_id: String,
    pub subject: String,
    pub content: String,
    /// Files uploaded beforehand (`att_...`), in the order named.
    pub attachment_ids: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubmissionRefused {
    #[error("an expert submits only for themself")]
    NotTheirOwn,
    #[error("an expert submits directly, not on someone's behalf")]
    ExpertOnBehalf,
    #[error("staff entering an expert's submission must say how and when they received it (D16)")]
    MissingOnBehalf,
    #[error("only a county bureau's operator reports for that county")]
    NotThatCounty,
    #[error("a county report is made by a county operator")]
    CountyReportByOthers,
}

impl NewSubmission {
    /// Checks that `caller` may make this submission: an expert only their own, directly; staff
    /// for an expert only with the channel and time received; a county report only by that
    /// county's operator.
    pub fn check_caller(&self, caller: &Caller) -> Result<(), SubmissionRefused> {
        match (&self.submitter, caller.role) {
            (Submitter::Expert { expert_id, on_behalf }, Role::Expert) => {
                if caller.expert_id.as_deref() != Some(expert_id.as_str()) {
                    return Err(SubmissionRefused::NotTheirOwn);
                }
                if on_behalf.is_some() {
                    return Err(SubmissionRefused::ExpertOnBehalf);
                }
                Ok(())
            }
            (Submitter::Expert { on_behalf: None, .. }, _) => Err(SubmissionRefused::MissingOnBehalf),
            (Submitter::Expert { .. }, _) => Ok(()),
            (Submitter::County(bureau), Role::CountyOperator) if caller.bureau == Some(*bureau) => Ok(()),
            (Submitter::County(_), Role::CountyOperator) => Err(SubmissionRefused::NotThatCounty),
            (Submitter::County(_), _) => Err(SubmissionRefused::CountyReportByOthers),
        }
    }
}

/// Where a submission stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmissionStatus {
    Received,
    Assigned,
    Answered,
    Closed,
}

impl SubmissionStatus {
    pub fn code(self) -> &'static str {
        match self {
            Self::Received => "RECEIVED",
            Self::Assigned => "ASSIGNED",
            Self::Answered => "ANSWERED",
            Self::Closed => "CLOSED",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        [Self::Received, Self::Assigned, Self::Answered, Self::Closed].into_iter().find(|s| s.code() == code)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    pub id: SubmissionId,
    pub details: NewSubmission,
    pub status: SubmissionStatus,
    pub submitted_by: Actor,
    pub submitted_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub handling: Handling,
}

/// How the city handles a submission (D21).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handling {
    /// The handler's subject, once assigned.
    pub handler: String,
    pub answer: String,
    pub follow_up_task_id: String,
    pub close_note: String,
}

/// One step of the handling workflow: RECEIVED or ASSIGNED -> ASSIGNED (assign or reassign),
/// ASSIGNED -> ANSWERED, and any open state -> CLOSED.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Assign { handler: String, note: String },
    Answer { answer: String },
    Close { note: String, follow_up_task_id: String },
}

impl Step {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Assign { .. } => "assign",
            Self::Answer { .. } => "answer",
            Self::Close { .. } => "close",
        }
    }

    /// The status after this step from `from`, or `None` when the step is not open from it.
    pub fn next(&self, from: SubmissionStatus) -> Option<SubmissionStatus> {
        use SubmissionStatus as S;
        match (self, from) {
            (Self::Assign { .. }, S::Received | S::Assigned) => Some(S::Assigned),
            (Self::Answer { .. }, S::Assigned) => Some(S::Answered),
            (Self::Close { .. }, S::Received | S::Assigned | S::Answered) => Some(S::Closed),
            _ => None,
        }
    }
}

/// Which submissions a caller may see: the city everything; a county what it reported; an
/// expert their own. Tip-offs stay with the city (article 8(三)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    All,
    County(Bureau),
    Expert(String),
    Nothing,
}

impl Visibility {
    pub fn of(caller: &Caller) -> Self {
        match caller.role {
            Role::CityAdmin | Role::CityReviewer | Role::CityOperator | Role::Auditor => Self::All,
            Role::CountyOperator => caller.bureau.map_or(Self::Nothing, Self::County),
            Role::Expert => caller.expert_id.clone().map_or(Self::Nothing, Self::Expert),
            _ => Self::Nothing,
        }
    }

    pub fn allows(&self, s: &Submission) -> bool {
        match (self, &s.details.submitter) {
            (Self::All, _) => true,
            (Self::County(b), Submitter::County(c)) => b == c,
            (Self::Expert(id), Submitter::Expert { expert_id, .. }) => id == expert_id,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmissionFilter {
    pub visibility: Visibility,
    pub kind: Option<SubmissionKind>,
    pub status: Option<SubmissionStatus>,
    pub expert_id: Option<String>,
    pub institution_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role, bureau: Option<Bureau>, expert_id: Option<&str>) -> Caller {
        Caller { subject: "u".into(), role, bureau, expert_id: expert_id.map(str::to_owned), acting_for: None }
    }

    fn from_expert(id: &str, on_behalf: Option<OnBehalf>) -> NewSubmission {
        NewSubmission {
            kind: SubmissionKind::TipOff,
            submitter: Submitter::Expert { expert_id: id.into(), on_behalf },
            source_party: String::new(),
            institution_id: String::new(),
            subject: "s".into(),
            content: "c".into(),
            attachment_ids: Vec::new(),
        }
    }

    fn by_phone() -> Option<OnBehalf> {
        Some(OnBehalf { channel: "ENTRY_CHANNEL_PHONE".into(), received_at: Utc::now(), note: String::new() })
    }

    #[test]
    fn an_expert_submits_only_their_own_and_directly() {
        let me = caller(Role::Expert, None, Some("exp_a"));
        assert_eq!(from_expert("exp_a", None).check_caller(&me), Ok(()));
        assert_eq!(from_expert("exp_b", None).check_caller(&me), Err(SubmissionRefused::NotTheirOwn));
        assert_eq!(from_expert("exp_a", by_phone()).check_caller(&me), Err(SubmissionRefused::ExpertOnBehalf));
    }

    #[test]
    fn staff_enter_for_an_expert_only_with_how_and_when_received() {
        let operator = caller(Role::CityOperator, Some(Bureau::City), None);
        assert_eq!(from_expert("exp_a", None).check_caller(&operator), Err(SubmissionRefused::MissingOnBehalf));
        assert_eq!(from_expert("exp_a", by_phone()).check_caller(&operator), Ok(()));
    }

    #[test]
    fn a_county_reports_only_for_itself() {
        let report = NewSubmission {
            kind: SubmissionKind::CountyReport,
            submitter: Submitter::County(Bureau::Enping),
            ..from_expert("", None)
        };
        assert_eq!(report.check_caller(&caller(Role::CountyOperator, Some(Bureau::Enping), None)), Ok(()));
        assert_eq!(
            report.check_caller(&caller(Role::CountyOperator, Some(Bureau::Heshan), None)),
            Err(SubmissionRefused::NotThatCounty)
        );
        assert_eq!(
            report.check_caller(&caller(Role::CityAdmin, None, None)),
            Err(SubmissionRefused::CountyReportByOthers)
        );
    }

    #[test]
    fn tip_offs_stay_with_the_city() {
        let s = Submission {
            id: SubmissionId::generate(),
            details: from_expert("exp_a", None),
            status: SubmissionStatus::Received,
            submitted_by: Actor { subject: "x".into(), role: "EXPERT".into(), bureau: None },
            submitted_at: Utc::now(),
            updated_at: Utc::now(),
            handling: Handling::default(),
        };
        assert!(Visibility::All.allows(&s));
        assert!(Visibility::Expert("exp_a".into()).allows(&s));
        assert!(!Visibility::Expert("exp_b".into()).allows(&s));
        assert!(!Visibility::County(Bureau::Enping).allows(&s));
    }
}
