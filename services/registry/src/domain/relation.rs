//! 回避关系 — relations between experts and institutions (or people there) and the conflicts they
//! make (article 9(六), D19, D20; DOMAIN.md 5.9 and 9.2 step 6).
//!
//! A relation conflicts from its first day (any time, when unknown) until the edition's
//! `conflict_lookback_years` after its last day; an open-ended relation conflicts while it lasts.
//! The look-back applies to every kind alike (the contract's "look-backs run from `end`"). A
//! relation recorded in error makes no conflict. The expert's current employer and the unit a
//! representative represents conflict without a relation row (D19), through the profile.

use std::fmt;

use chrono::{DateTime, Months, NaiveDate, Utc};
use supervision_kit::{auth::Actor, vocab::OnBehalf};

use super::{Evidence, ExpertId, Institution, InstitutionId, LegalStanding, Organisation};

/// A relation's id: `rel_` and a UUIDv7, so relations sort by the time they were recorded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelationId(String);

impl RelationId {
    const PREFIX: &'static str = "rel_";

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

impl fmt::Display for RelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

coded_enum! {
    /// The kinds of relation of DOMAIN.md 5.9, as the contract names them.
    pub enum RelationKind {
        CurrentEmployment = "CURRENT_EMPLOYMENT",
        PastEmployment = "PAST_EMPLOYMENT",
        DirectorOrSupervisor = "DIRECTOR_OR_SUPERVISOR",
        ShareholderOrController = "SHAREHOLDER_OR_CONTROLLER",
        PaidService = "PAID_SERVICE",
        TeacherStudent = "TEACHER_STUDENT",
        MasterApprentice = "MASTER_APPRENTICE",
        Colleague = "COLLEAGUE",
        Relative = "RELATIVE",
        RepresentedUnit = "REPRESENTED_UNIT",
        Competitor = "COMPETITOR",
        DeclaredConflict = "DECLARED_CONFLICT",
    }
}

impl RelationKind {
    /// Relations with a person at the institution, which name that person.
    pub fn is_with_a_person(self) -> bool {
        matches!(self, Self::TeacherStudent | Self::MasterApprentice | Self::Colleague | Self::Relative)
    }
}

coded_enum! {
    /// Where a relation's record came from.
    pub enum RelationSource {
        SelfDeclared = "SELF_DECLARED",
        Bureau = "BUREAU",
        Recusal = "RECUSAL",
        Institution = "INSTITUTION",
        Import = "IMPORT",
    }
}

coded_enum! {
    /// How a conflict reaches the institution asked about.
    pub enum ConflictPath {
        Direct = "DIRECT",
        Parent = "PARENT",
        SubUnit = "SUB_UNIT",
        Employer = "EMPLOYER",
        RepresentedUnit = "REPRESENTED_UNIT",
    }
}

/// A relation as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub id: RelationId,
    pub expert_id: ExpertId,
    pub kind: RelationKind,
    /// The registered institution; `None` when only `organisation` is known.
    pub institution_id: Option<InstitutionId>,
    /// The organisation by name and credit code, when not registered.
    pub organisation: Option<Organisation>,
    pub counterpart_name: String,
    pub counterpart_role: String,
    pub valid_from: Option<NaiveDate>,
    /// The last day it held; `None` while it lasts.
    pub valid_to: Option<NaiveDate>,
    pub source: RelationSource,
    /// The record behind the source (the assignment of a recusal).
    pub source_ref: String,
    pub evidence: Evidence,
    pub note: String,
    pub recorded_by: Actor,
    pub on_behalf: Option<OnBehalf>,
    pub recorded_at: DateTime<Utc>,
    pub recorded_in_error: bool,
    pub end_reason: String,
}

/// The last day a relation that ended on `end` still conflicts: `end` plus the look-back years
/// (29 February plus whole years falls on 28 February).
pub fn conflicted_until(end: NaiveDate, lookback_years: u32) -> NaiveDate {
    end.checked_add_months(Months::new(lookback_years.saturating_mul(12))).unwrap_or(NaiveDate::MAX)
}

impl Relation {
    /// Whether the relation conflicts on some day from `first` to `last`, and if so until when
    /// (`None` while open-ended).
    pub fn conflict_over(&self, first: NaiveDate, last: NaiveDate, lookback_years: u32) -> Option<Option<NaiveDate>> {
        if self.recorded_in_error || self.valid_from.is_some_and(|from| from > last) {
            return None;
        }
        match self.valid_to {
            None => Some(None),
            Some(end) => {
                let until = conflicted_until(end, lookback_years);
                (until >= first).then_some(Some(until))
            }
        }
    }

    /// Whether the relation is over (ended before `today`, or recorded in error).
    pub fn is_ended(&self, today: NaiveDate) -> bool {
        self.recorded_in_error || self.valid_to.is_some_and(|end| end < today)
    }
}

/// One reason an expert is conflicted: codes and ids only (D18).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictReason {
    pub kind: RelationKind,
    pub relation_id: Option<RelationId>,
    pub path: ConflictPath,
    pub until: Option<NaiveDate>,
}

/// An institution asked about with its parent and sub-units (D20), each with how it reaches the
/// institution asked about and its credit code (legal entities only).
#[derive(Debug, Clone, Default)]
pub struct InstitutionFamily {
    members: Vec<(InstitutionId, Option<String>, ConflictPath)>,
}

impl InstitutionFamily {
    /// The family of `asked` from the institutions found for it (itself, its parent, its
    /// sub-units, in any order).
    pub fn of(asked: &InstitutionId, found: &[Institution]) -> Self {
        let parent = found.iter().find(|i| &i.id == asked).and_then(|i| match &i.standing {
            LegalStanding::SubUnitOf(parent) => Some(parent.clone()),
            LegalStanding::LegalEntity(_) => None,
        });
        let members = found
            .iter()
            .map(|i| {
                let path = if &i.id == asked {
                    ConflictPath::Direct
                } else if Some(&i.id) == parent.as_ref() {
                    ConflictPath::Parent
                } else {
                    ConflictPath::SubUnit
                };
                let code = match &i.standing {
                    LegalStanding::LegalEntity(code) => Some(code.to_string()),
                    LegalStanding::SubUnitOf(_) => None,
                };
                (i.id.clone(), code, path)
            })
            .collect();
        Self { members }
    }

    /// The members' institution ids.
    pub fn ids(&self) -> Vec<String> {
        self.members.iter().map(|(i, _, _)| i.to_string()).collect()
    }

    /// The members' credit codes (legal entities only have one).
    pub fn credit_codes(&self) -> Vec<String> {
        self.members.iter().filter_map(|(_, c, _)| c.clone()).collect()
    }

    /// How the institution `id` reaches the one asked about, if it is in the family.
    pub fn path_of_institution(&self, id: &str) -> Option<ConflictPath> {
        self.members.iter().find(|(i, _, _)| i.as_str() == id).map(|(_, _, p)| *p)
    }

    /// How the organisation with credit code `code` reaches the one asked about, if it is in the
    /// family.
    pub fn path_of_code(&self, code: &str) -> Option<ConflictPath> {
        if code.is_empty() {
            return None;
        }
        self.members.iter().find(|(_, c, _)| c.as_deref() == Some(code)).map(|(_, _, p)| *p)
    }

    /// How a relation's counterpart reaches the institution asked about, if it does.
    pub fn path_of_relation(&self, relation: &Relation) -> Option<ConflictPath> {
        relation.institution_id.as_ref().and_then(|id| self.path_of_institution(id.as_str())).or_else(|| {
            relation
                .organisation
                .as_ref()
                .and_then(|o| o.credit_code.as_ref())
                .and_then(|code| self.path_of_code(code.as_str()))
        })
    }

    /// Whether an organisation named by institution id or credit code is in the family.
    fn reaches(&self, institution_id: &str, credit_code: &str) -> bool {
        (!institution_id.is_empty() && self.path_of_institution(institution_id).is_some())
            || self.path_of_code(credit_code).is_some()
    }

    /// The conflicts an expert's profile makes without a relation row: the current employer (by
    /// institution id or credit code) and the represented unit (D19), anywhere in the family.
    pub fn profile_reasons(&self, profile: &ProfileLinks) -> Vec<ConflictReason> {
        let mut reasons = Vec::new();
        if self.reaches(&profile.employer_institution_id, &profile.employer_credit_code) {
            reasons.push(ConflictReason {
                kind: RelationKind::CurrentEmployment,
                relation_id: None,
                path: ConflictPath::Employer,
                until: None,
            });
        }
        if self.reaches(&profile.represented_institution_id, &profile.represented_credit_code) {
            reasons.push(ConflictReason {
                kind: RelationKind::RepresentedUnit,
                relation_id: None,
                path: ConflictPath::RepresentedUnit,
                until: None,
            });
        }
        reasons
    }
}

/// The organisations an expert's profile links them to, as stored ('' when absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileLinks {
    pub employer_institution_id: String,
    pub employer_credit_code: String,
    pub represented_institution_id: String,
    pub represented_credit_code: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CreditCode, InstitutionKind, InstitutionStatus};

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn relation(from: Option<&str>, to: Option<&str>) -> Relation {
        Relation {
            id: RelationId::generate(),
            expert_id: ExpertId::generate(),
            kind: RelationKind::PastEmployment,
            institution_id: None,
            organisation: None,
            counterpart_name: String::new(),
            counterpart_role: String::new(),
            valid_from: from.map(day),
            valid_to: to.map(day),
            source: RelationSource::Bureau,
            source_ref: String::new(),
            evidence: Evidence::default(),
            note: String::new(),
            recorded_by: Actor { subject: "u".into(), role: "CITY_ADMIN".into(), bureau: None },
            on_behalf: None,
            recorded_at: DateTime::UNIX_EPOCH,
            recorded_in_error: false,
            end_reason: String::new(),
        }
    }

    #[test]
    fn an_ended_relation_conflicts_for_the_look_back_after_its_end() {
        let r = relation(Some("2015-09-01"), Some("2022-06-30"));
        assert_eq!(r.conflict_over(day("2025-06-30"), day("2025-07-02"), 3), Some(Some(day("2025-06-30"))));
        assert_eq!(r.conflict_over(day("2025-07-01"), day("2025-07-02"), 3), None, "the day after the look-back");
        assert_eq!(r.conflict_over(day("2025-07-01"), day("2025-07-02"), 5), Some(Some(day("2027-06-30"))));
        assert_eq!(conflicted_until(day("2024-02-29"), 3), day("2027-02-28"));
    }

    #[test]
    fn an_open_relation_conflicts_from_its_start_and_one_in_error_never() {
        let open = relation(Some("2026-03-01"), None);
        assert_eq!(open.conflict_over(day("2026-01-01"), day("2026-02-28"), 3), None, "not yet begun");
        assert_eq!(open.conflict_over(day("2026-01-01"), day("2026-03-01"), 3), Some(None));
        let unknown_start = relation(None, None);
        assert_eq!(unknown_start.conflict_over(day("2000-01-01"), day("2000-01-01"), 3), Some(None));
        let error = Relation { recorded_in_error: true, ..unknown_start };
        assert_eq!(error.conflict_over(day("2026-01-01"), day("2026-01-01"), 3), None);
    }

    #[test]
    fn the_family_reaches_the_parent_and_the_sub_units() {
        let institution = |standing| Institution {
            id: InstitutionId::generate(),
            kind: InstitutionKind::Other,
            name: "x".into(),
            standing,
            county: supervision_kit::Bureau::Xinhui,
            address: String::new(),
            head: String::new(),
            status: InstitutionStatus::Active,
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
        };
        let code = CreditCode::parse("91350100M000100Y43").unwrap();
        let parent = institution(LegalStanding::LegalEntity(code.clone()));
        let asked = institution(LegalStanding::SubUnitOf(parent.id.clone()));
        let family = InstitutionFamily::of(&asked.id, &[parent.clone(), asked.clone()]);
        assert_eq!(family.path_of_institution(asked.id.as_str()), Some(ConflictPath::Direct));
        assert_eq!(family.path_of_institution(parent.id.as_str()), Some(ConflictPath::Parent));
        assert_eq!(family.path_of_code(code.as_str()), Some(ConflictPath::Parent));
        assert_eq!(family.path_of_code(""), None);
        let of_parent = InstitutionFamily::of(&parent.id, &[parent.clone(), asked.clone()]);
        assert_eq!(of_parent.path_of_institution(asked.id.as_str()), Some(ConflictPath::SubUnit));

        let employed = ProfileLinks { employer_credit_code: code.to_string(), ..Default::default() };
        let reasons = family.profile_reasons(&employed);
        assert_eq!(reasons.iter().map(|r| r.path).collect::<Vec<_>>(), [ConflictPath::Employer]);
        let representing = ProfileLinks { represented_institution_id: asked.id.to_string(), ..Default::default() };
        assert_eq!(family.profile_reasons(&representing)[0].path, ConflictPath::RepresentedUnit);
        assert!(family.profile_reasons(&ProfileLinks::default()).is_empty(), "no employer, no conflict");
    }
}
