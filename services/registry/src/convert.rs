//! proto <-> domain. Every problem with a request becomes a field violation naming the field.

pub mod appointments;
pub mod experts;
pub mod relations;

use supervision_kit::{
    Bureau, FieldViolations, Page,
    convert::{optional_text, required_text, timestamp},
};
use supervision_proto::registry as pb;
use tonic::Status;

use crate::domain::{
    CreditCode, Institution, InstitutionFilter, InstitutionId, InstitutionKind, InstitutionStatus, LegalStanding,
    NewInstitution,
};

const MAX_NAME_CHARS: usize = 200;
const MAX_ADDRESS_CHARS: usize = 500;
const MAX_PERSON_CHARS: usize = 100;

pub fn new_institution(req: pb::CreateInstitutionRequest) -> Result<NewInstitution, Status> {
    let mut v = FieldViolations::new();
    let kind = institution_kind(req.r#type, "type", &mut v);
    let name = required_text(&req.name, "name", MAX_NAME_CHARS, &mut v);
    let standing = match (req.credit_code.trim().is_empty(), req.parent_id.trim().is_empty()) {
        (false, true) => match CreditCode::parse(&req.credit_code) {
            Ok(code) => Some(LegalStanding::LegalEntity(code)),
            Err(err) => {
                v.add("credit_code", err.to_string());
                None
            }
        },
        (true, false) => match InstitutionId::parse(req.parent_id.trim()) {
            Some(id) => Some(LegalStanding::SubUnitOf(id)),
            None => {
                v.add("parent_id", "is not an institution id");
                None
            }
        },
        (true, true) => {
            v.add("credit_code", "a legal entity needs its credit code; a sub-unit gives parent_id instead");
            None
        }
        (false, false) => {
            v.add("parent_id", "give either credit_code (a legal entity) or parent_id (a sub-unit), not both");
            None
        }
    };
    let county = county(req.county, "county", &mut v);
    let address = optional_text(&req.address, "address", MAX_ADDRESS_CHARS, &mut v);
    let head = optional_text(&req.head, "head", MAX_PERSON_CHARS, &mut v);
    v.check()?;
    let (Some(kind), Some(standing), Some(county)) = (kind, standing, county) else {
        unreachable!("every None above recorded a violation");
    };
    Ok(NewInstitution { kind, name, standing, county, address, head })
}

/// A validated UpdateInstitution request: the merged result is checked by the caller's use case
/// with the same rules as a new institution.
#[derive(Debug, Clone)]
pub struct InstitutionUpdate {
    pub id: InstitutionId,
    /// The fields named in the mask, as given.
    pub values: pb::Institution,
    pub paths: Vec<String>,
    pub reason: String,
}

/// The paths UpdateInstitution accepts.
pub const INSTITUTION_PATHS: &[&str] =
    &["type", "name", "credit_code", "parent_id", "county", "address", "head", "status"];

pub fn institution_update(req: pb::UpdateInstitutionRequest) -> Result<InstitutionUpdate, Status> {
    let mut v = FieldViolations::new();
    let values = req.institution.unwrap_or_default();
    let id = InstitutionId::parse(values.id.trim());
    if id.is_none() {
        v.add("institution.id", "is not an institution id");
    }
    let mut paths = Vec::new();
    match req.update_mask {
        Some(mask) if !mask.paths.is_empty() => {
            for path in mask.paths {
                if !INSTITUTION_PATHS.contains(&path.as_str()) {
                    v.add("update_mask", format!("`{path}` is not one of {}", INSTITUTION_PATHS.join(", ")));
                } else if !paths.contains(&path) {
                    paths.push(path);
                }
            }
        }
        _ => v.add("update_mask", "name the fields to change"),
    }
    if paths.iter().any(|p| p == "status")
        && !matches!(
            pb::InstitutionStatus::try_from(values.status),
            Ok(pb::InstitutionStatus::Active | pb::InstitutionStatus::Closed)
        )
    {
        v.add("institution.status", "must be ACTIVE or CLOSED");
    }
    let reason = required_text(&req.reason, "reason", 500, &mut v);
    v.check()?;
    Ok(InstitutionUpdate { id: id.expect("checked above"), values, paths, reason })
}

/// The CreateInstitution request that describes `current` with the fields of `update` replaced,
/// to check the result with the rules of a new institution.
pub fn merged_institution(current: &pb::Institution, update: &InstitutionUpdate) -> pb::CreateInstitutionRequest {
    let named = |path: &str| update.paths.iter().any(|p| p == path);
    let v = &update.values;
    let pick = |path: &str, new: &str, old: &str| if named(path) { new.to_owned() } else { old.to_owned() };
    pb::CreateInstitutionRequest {
        request_id: String::new(),
        r#type: if named("type") { v.r#type } else { current.r#type },
        name: pick("name", &v.name, &current.name),
        credit_code: pick("credit_code", &v.credit_code, &current.credit_code),
        parent_id: pick("parent_id", &v.parent_id, &current.parent_id),
        county: if named("county") { v.county } else { current.county },
        address: pick("address", &v.address, &current.address),
        head: pick("head", &v.head, &current.head),
    }
}

pub fn institution_id(raw: &str, field: &str) -> Result<InstitutionId, Status> {
    InstitutionId::parse(raw).ok_or_else(|| supervision_kit::error::invalid_field(field, "is not an institution id"))
}

pub fn institution_listing(req: &pb::ListInstitutionsRequest) -> Result<(InstitutionFilter, Page), Status> {
    let mut v = FieldViolations::new();
    let page = Page::parse(req.page.as_ref(), "page", |t| InstitutionId::parse(t).is_some(), &mut v);
    let county = if req.county == 0 { None } else { county(req.county, "county", &mut v) };
    let kind = if req.r#type == 0 { None } else { institution_kind(req.r#type, "type", &mut v) };
    let name_contains = (!req.name_contains.is_empty())
        .then(|| optional_text(&req.name_contains, "name_contains", MAX_NAME_CHARS, &mut v))
        .filter(|s| !s.is_empty());
    v.check()?;
    Ok((InstitutionFilter { county, kind, name_contains }, page))
}

pub fn institution_to_proto(i: Institution) -> pb::Institution {
    let (credit_code, parent_id) = match i.standing {
        LegalStanding::LegalEntity(code) => (code.to_string(), String::new()),
        LegalStanding::SubUnitOf(parent) => (String::new(), parent.to_string()),
    };
    pb::Institution {
        id: i.id.to_string(),
        r#type: kind_to_proto(i.kind) as i32,
        name: i.name,
        credit_code,
        parent_id,
        county: i.county.to_proto() as i32,
        address: i.address,
        head: i.head,
        status: match i.status {
            InstitutionStatus::Active => pb::InstitutionStatus::Active,
            InstitutionStatus::Closed => pb::InstitutionStatus::Closed,
        } as i32,
        create_time: Some(timestamp(i.created_at)),
        update_time: Some(timestamp(i.updated_at)),
    }
}

fn county(value: i32, field: &str, v: &mut FieldViolations) -> Option<Bureau> {
    match Bureau::from_proto(value) {
        Some(b) if b.is_county() => Some(b),
        _ => {
            v.add(field, "must be one of the seven county codes of Jiangmen (440703 ... 440785)");
            None
        }
    }
}

fn institution_kind(value: i32, field: &str, v: &mut FieldViolations) -> Option<InstitutionKind> {
    let kind = pb::InstitutionType::try_from(value).ok().and_then(kind_from_proto);
    if kind.is_none() {
        v.add(field, "must be one of the institution types of article 3");
    }
    kind
}

fn kind_from_proto(t: pb::InstitutionType) -> Option<InstitutionKind> {
    use pb::InstitutionType as P;
    Some(match t {
        P::Unspecified => return None,
        P::VocationalTrainingSchool => InstitutionKind::VocationalTrainingSchool,
        P::SkillLevelEvaluationOrganisation => InstitutionKind::SkillLevelEvaluationOrganisation,
        P::CourseStandardProvider => InstitutionKind::CourseStandardProvider,
        P::QualificationAppraisalInstitution => InstitutionKind::QualificationAppraisalInstitution,
        P::SpecialAbilityAssessmentInstitution => InstitutionKind::SpecialAbilityAssessmentInstitution,
        P::HigherEducation => InstitutionKind::HigherEducation,
        P::TechnicalSchool => InstitutionKind::TechnicalSchool,
        P::VocationalCollege => InstitutionKind::VocationalCollege,
        P::EmploymentTrainingCentre => InstitutionKind::EmploymentTrainingCentre,
        P::IndustryAssociationTrainingCentre => InstitutionKind::IndustryAssociationTrainingCentre,
        P::EnterpriseTrainingCentre => InstitutionKind::EnterpriseTrainingCentre,
        P::PracticalTrainingBase => InstitutionKind::PracticalTrainingBase,
        P::TrainingBase => InstitutionKind::TrainingBase,
        P::Studio => InstitutionKind::Studio,
        P::Other => InstitutionKind::Other,
    })
}

fn kind_to_proto(k: InstitutionKind) -> pb::InstitutionType {
    use pb::InstitutionType as P;
    match k {
        InstitutionKind::VocationalTrainingSchool => P::VocationalTrainingSchool,
        InstitutionKind::SkillLevelEvaluationOrganisation => P::SkillLevelEvaluationOrganisation,
        InstitutionKind::CourseStandardProvider => P::CourseStandardProvider,
        InstitutionKind::QualificationAppraisalInstitution => P::QualificationAppraisalInstitution,
        InstitutionKind::SpecialAbilityAssessmentInstitution => P::SpecialAbilityAssessmentInstitution,
        InstitutionKind::HigherEducation => P::HigherEducation,
        InstitutionKind::TechnicalSchool => P::TechnicalSchool,
        InstitutionKind::VocationalCollege => P::VocationalCollege,
        InstitutionKind::EmploymentTrainingCentre => P::EmploymentTrainingCentre,
        InstitutionKind::IndustryAssociationTrainingCentre => P::IndustryAssociationTrainingCentre,
        InstitutionKind::EnterpriseTrainingCentre => P::EnterpriseTrainingCentre,
        InstitutionKind::PracticalTrainingBase => P::PracticalTrainingBase,
        InstitutionKind::TrainingBase => P::TrainingBase,
        InstitutionKind::Studio => P::Studio,
        InstitutionKind::Other => P::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> pb::CreateInstitutionRequest {
        pb::CreateInstitutionRequest {
            request_id: String::new(),
            r#type: pb::InstitutionType::VocationalTrainingSchool as i32,
            name: "江门市示例职业培训学校".into(),
            credit_code: "91350100M000100Y43".into(),
            parent_id: String::new(),
            county: supervision_proto::common::BureauCode::Pengjiang as i32,
            address: "江门市蓬江区".into(),
            head: "张三".into(),
        }
    }

    fn violated_fields(status: &Status) -> Vec<String> {
        use tonic_types::StatusExt;
        status.get_error_details().bad_request().unwrap().field_violations.iter().map(|f| f.field.clone()).collect()
    }

    #[test]
    fn a_valid_request_converts() {
        let new = new_institution(valid()).unwrap();
        assert_eq!(new.county, Bureau::Pengjiang);
        assert!(matches!(new.standing, LegalStanding::LegalEntity(_)));
    }

    #[test]
    fn every_bad_field_is_named() {
        let req = pb::CreateInstitutionRequest {
            r#type: 0,
            name: "  ".into(),
            credit_code: "91350100M000100Y44".into(),
            county: supervision_proto::common::BureauCode::JiangmenCity as i32,
            ..valid()
        };
        assert_eq!(violated_fields(&new_institution(req).unwrap_err()), ["type", "name", "credit_code", "county"]);
    }

    #[test]
    fn a_sub_unit_names_its_parent_instead_of_a_code() {
        let parent = InstitutionId::generate();
        let req = pb::CreateInstitutionRequest { credit_code: String::new(), parent_id: parent.to_string(), ..valid() };
        assert_eq!(new_institution(req).unwrap().standing, LegalStanding::SubUnitOf(parent.clone()));
        let both = pb::CreateInstitutionRequest { parent_id: parent.to_string(), ..valid() };
        assert_eq!(violated_fields(&new_institution(both).unwrap_err()), ["parent_id"]);
        let neither = pb::CreateInstitutionRequest { credit_code: String::new(), ..valid() };
        assert_eq!(violated_fields(&new_institution(neither).unwrap_err()), ["credit_code"]);
    }
}
