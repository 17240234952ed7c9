//! 培训评价机构 — the training and evaluation institutions of article 3 that experts supervise.

use std::fmt;

use chrono::{DateTime, Utc};
use supervision_kit::Bureau;

use super::CreditCode;

/// The registry's opaque id of an institution: `ins_` and 32 lower-case hex digits of a UUIDv7,
/// so ids sort in creation order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstitutionId(String);

impl InstitutionId {
    const PREFIX: &'static str = "ins_";

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

impl fmt::Display for InstitutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The institution types listed in article 3; `Other` covers its closing "等".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstitutionKind {
    VocationalTrainingSchool,
    SkillLevelEvaluationOrganisation,
    CourseStandardProvider,
    QualificationAppraisalInstitution,
    SpecialAbilityAssessmentInstitution,
    HigherEducation,
    TechnicalSchool,
    VocationalCollege,
    EmploymentTrainingCentre,
    IndustryAssociationTrainingCentre,
    EnterpriseTrainingCentre,
    PracticalTrainingBase,
    TrainingBase,
    Studio,
    Other,
}

impl InstitutionKind {
    pub const ALL: [InstitutionKind; 15] = [
        Self::VocationalTrainingSchool,
        Self::SkillLevelEvaluationOrganisation,
        Self::CourseStandardProvider,
        Self::QualificationAppraisalInstitution,
        Self::SpecialAbilityAssessmentInstitution,
        Self::HigherEducation,
        Self::TechnicalSchool,
        Self::VocationalCollege,
        Self::EmploymentTrainingCentre,
        Self::IndustryAssociationTrainingCentre,
        Self::EnterpriseTrainingCentre,
        Self::PracticalTrainingBase,
        Self::TrainingBase,
        Self::Studio,
        Self::Other,
    ];

    /// The stable code stored in the database.
    pub fn code(self) -> &'static str {
        match self {
            Self::VocationalTrainingSchool => "VOCATIONAL_TRAINING_SCHOOL",
            Self::SkillLevelEvaluationOrganisation => "SKILL_LEVEL_EVALUATION_ORGANISATION",
            Self::CourseStandardProvider => "COURSE_STANDARD_PROVIDER",
            Self::QualificationAppraisalInstitution => "QUALIFICATION_APPRAISAL_INSTITUTION",
            Self::SpecialAbilityAssessmentInstitution => "SPECIAL_ABILITY_ASSESSMENT_INSTITUTION",
            Self::HigherEducation => "HIGHER_EDUCATION",
            Self::TechnicalSchool => "TECHNICAL_SCHOOL",
            Self::VocationalCollege => "VOCATIONAL_COLLEGE",
            Self::EmploymentTrainingCentre => "EMPLOYMENT_TRAINING_CENTRE",
            Self::IndustryAssociationTrainingCentre => "INDUSTRY_ASSOCIATION_TRAINING_CENTRE",
            Self::EnterpriseTrainingCentre => "ENTERPRISE_TRAINING_CENTRE",
            Self::PracticalTrainingBase => "PRACTICAL_TRAINING_BASE",
            Self::TrainingBase => "TRAINING_BASE",
            Self::Studio => "STUDIO",
            Self::Other => "OTHER",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }

    /// Whether this kind is usually a sub-unit of a legal entity rather than one itself (D20).
    /// Advisory only: a studio may be registered on its own.
    pub fn is_typically_sub_unit(self) -> bool {
        matches!(self, Self::Studio | Self::TrainingBase | Self::PracticalTrainingBase | Self::EnterpriseTrainingCentre)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstitutionStatus {
    Active,
    Closed,
}

impl InstitutionStatus {
    pub fn code(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Closed => "CLOSED",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "ACTIVE" => Some(Self::Active),
            "CLOSED" => Some(Self::Closed),
            _ => None,
        }
    }
}

/// How an institution is identified (D20): a legal entity by its own credit code, a sub-unit by
/// the legal entity it belongs to. Exactly one, never both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegalStanding {
    LegalEntity(CreditCode),
    SubUnitOf(InstitutionId),
}

/// A validated request to register an institution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInstitution {
    pub kind: InstitutionKind,
    pub name: String,
    pub standing: LegalStanding,
    pub county: Bureau,
    pub address: String,
    pub head: String,
}

/// An institution as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Institution {
    pub id: InstitutionId,
    pub kind: InstitutionKind,
    pub name: String,
    pub standing: LegalStanding,
    pub county: Bureau,
    pub address: String,
    pub head: String,
    pub status: InstitutionStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Filters of a listing; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstitutionFilter {
    pub county: Option<Bureau>,
    pub kind: Option<InstitutionKind>,
    pub name_contains: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_sort_in_creation_order() {
        let a = InstitutionId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = InstitutionId::generate();
        assert_eq!(InstitutionId::parse(a.as_str()), Some(a.clone()));
        assert!(a < b);
    }

    #[test]
    fn malformed_ids_do_not_parse() {
        for bad in
            ["", "ins_", "exp_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f", "ins_0192F0C8A1B27C3D8E4F5A6B7C8D9E0F", "ins_xyz"]
        {
            assert_eq!(InstitutionId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn kind_codes_round_trip() {
        for k in InstitutionKind::ALL {
            assert_eq!(InstitutionKind::from_code(k.code()), Some(k));
        }
    }
}
