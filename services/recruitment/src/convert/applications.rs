//! Applications: requests validated field by field (`profile.identity.number`,
//! `profile.categories[1].category`), responses masked by [`Visibility`] as in the registry.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use supervision_kit::{
    Bureau, FieldViolations, Page, SpecialtyCode,
    convert::{optional_date, optional_text, required_enum, required_text, timestamp},
    credit_code::CreditCode,
    identity::{DocumentError, DocumentType, IdentityDocument},
    personal::{mask_account, mask_document, mask_email, mask_mobile},
    vocab::OnBehalf,
};
use supervision_proto::{common, recruitment as pb};
use tonic::Status;

use super::actor_to_proto;
use crate::domain::{
    Application, ApplicationFilter, ApplicationId, ApplicationStatus, BankAccount, CallId, Conclusion, Contact,
    Material, MaterialId, NewMaterial, Outcome, Profile, ReviewInput, ReviewItem, ReviewTarget, Verdict, Visibility,
    application::{MAX_MATERIAL_BYTES, MEDIA_TYPES},
};

const MAX_NAME_CHARS: usize = 50;
const MAX_SHORT_CHARS: usize = 200;
const MAX_TEXT_CHARS: usize = 2000;
const MAX_ADDRESS_CHARS: usize = 300;
const MAX_ITEMS: usize = 50;
const MAX_FILE_NAME_CHARS: usize = 255;

/// The paths of ApplicantProfile an update mask may name; repeated fields are replaced whole.
pub const PROFILE_PATHS: [&str; 18] = [
    "kind",
    "name",
    "gender",
    "birth_date",
    "identity",
    "locality",
    "contact",
    "bank_account",
    "employer",
    "represented_unit",
    "professional_title",
    "civil_servant_status",
    "categories",
    "conditions",
    "specialties",
    "preferred_counties",
    "availability_notes",
    "conflict_declarations",
];

pub fn application_id(raw: &str, field: &str) -> Result<ApplicationId, Status> {
    ApplicationId::parse(raw).ok_or_else(|| supervision_kit::error::invalid_field(field, "is not an application id"))
}

pub fn material_id(raw: &str, field: &str) -> Result<MaterialId, Status> {
    MaterialId::parse(raw).ok_or_else(|| supervision_kit::error::invalid_field(field, "is not a material id"))
}

/// A validated CreateApplication: the call, the profile, who it replaces, the staff entry.
#[derive(Debug)]
pub struct NewApplication {
    pub call_id: CallId,
    pub profile: Profile,
    pub replaces_expert_id: String,
    pub on_behalf: Option<OnBehalf>,
}

/// Validates a CreateApplication. Staff (`staff_entry`) must say how the paper application
/// reached them (`on_behalf`, D16); an applicant entering their own must not.
pub fn new_application(
    req: &pb::CreateApplicationRequest,
    staff_entry: bool,
    now: DateTime<Utc>,
    today: NaiveDate,
) -> Result<NewApplication, Status> {
    let mut v = FieldViolations::new();
    let call_id = CallId::parse(&req.call_id);
    if call_id.is_none() {
        v.add("call_id", "is not a call id");
    }
    let profile = profile(req.profile.as_ref(), today, &mut v);
    let replaces = req.replaces_expert_id.trim().to_owned();
    if !replaces.is_empty() {
        if !supervision_kit::vocab::is_prefixed_id(&replaces, "exp_") {
            v.add("replaces_expert_id", "is not an expert id");
        }
        if profile.as_ref().is_some_and(|p| p.rest.kind != common::ExpertKind::UnitRepresentative as i32) {
            v.add("replaces_expert_id", "only a unit representative replaces an expert (D19)");
        }
    }
    let on_behalf = on_behalf_rule(req.on_behalf.as_ref(), staff_entry, now, &mut v);
    v.check()?;
    Ok(NewApplication {
        call_id: call_id.expect("checked above"),
        profile: profile.expect("a missing profile recorded a violation"),
        replaces_expert_id: replaces,
        on_behalf,
    })
}

fn on_behalf_rule(
    raw: Option<&common::OnBehalf>,
    staff_entry: bool,
    now: DateTime<Utc>,
    v: &mut FieldViolations,
) -> Option<OnBehalf> {
    match (staff_entry, raw) {
        (true, None) => {
            v.add("on_behalf", "is required when staff act for an applicant: how and when it was received (D16)");
            None
        }
        (false, Some(_)) => {
            v.add("on_behalf", "is for staff acting for an applicant; an applicant acts for themself");
            None
        }
        _ => supervision_kit::convert::on_behalf(raw, "on_behalf", now, v),
    }
}

/// A validated UpdateApplication: the profile paths to replace and their new values.
#[derive(Debug)]
pub struct ApplicationUpdate {
    pub id: ApplicationId,
    pub paths: Vec<&'static str>,
    pub values: pb::ApplicantProfile,
    pub expected_revision: i64,
    pub on_behalf: Option<OnBehalf>,
}

pub fn application_update(
    req: &pb::UpdateApplicationRequest,
    staff_entry: bool,
    now: DateTime<Utc>,
) -> Result<ApplicationUpdate, Status> {
    let mut v = FieldViolations::new();
    let id = ApplicationId::parse(&req.application_id);
    if id.is_none() {
        v.add("application_id", "is not an application id");
    }
    let raw = req.update_mask.as_ref().map(|m| m.paths.as_slice()).unwrap_or_default();
    if raw.is_empty() {
        v.add("update_mask", "must name at least one field of ApplicantProfile, e.g. `contact`");
    }
    let mut paths = Vec::new();
    for (i, path) in raw.iter().enumerate() {
        match PROFILE_PATHS.iter().find(|p| **p == path.as_str()) {
            Some(p) if paths.contains(p) => {
                v.add(format!("update_mask.paths[{i}]"), format!("`{path}` is named twice"))
            }
            Some(p) => paths.push(*p),
            None => v.add(
                format!("update_mask.paths[{i}]"),
                format!("`{path}` is not a field of ApplicantProfile; name whole fields such as `contact`"),
            ),
        }
    }
    if req.profile.is_none() && !raw.is_empty() {
        v.add("profile", "is required: it holds the new values of the fields named in update_mask");
    }
    if req.expected_revision < 0 {
        v.add("expected_revision", "must be 0 (no check) or a revision read");
    }
    let on_behalf = on_behalf_rule(req.on_behalf.as_ref(), staff_entry, now, &mut v);
    v.check()?;
    Ok(ApplicationUpdate {
        id: id.expect("checked above"),
        paths,
        values: req.profile.clone().unwrap_or_default(),
        expected_revision: req.expected_revision,
        on_behalf,
    })
}

/// Copies the fields named in `paths` from `values` into `target`.
pub fn apply_paths(target: &mut pb::ApplicantProfile, values: &pb::ApplicantProfile, paths: &[&str]) {
    for path in paths {
        match *path {
            "kind" => target.kind = values.kind,
            "name" => target.name.clone_from(&values.name),
            "gender" => target.gender = values.gender,
            "birth_date" => target.birth_date = values.birth_date,
            "identity" => target.identity.clone_from(&values.identity),
            "locality" => target.locality.clone_from(&values.locality),
            "contact" => target.contact.clone_from(&values.contact),
            "bank_account" => target.bank_account.clone_from(&values.bank_account),
            "employer" => target.employer.clone_from(&values.employer),
            "represented_unit" => target.represented_unit.clone_from(&values.represented_unit),
            "professional_title" => target.professional_title.clone_from(&values.professional_title),
            "civil_servant_status" => target.civil_servant_status = values.civil_servant_status,
            "categories" => target.categories.clone_from(&values.categories),
            "conditions" => target.conditions.clone_from(&values.conditions),
            "specialties" => target.specialties.clone_from(&values.specialties),
            "preferred_counties" => target.preferred_counties.clone_from(&values.preferred_counties),
            "availability_notes" => target.availability_notes.clone_from(&values.availability_notes),
            "conflict_declarations" => target.conflict_declarations.clone_from(&values.conflict_declarations),
            _ => {}
        }
    }
}

/// Validates a whole profile (a creation, or the result of an update), each problem named by
/// its path under `profile`.
pub fn profile(raw: Option<&pb::ApplicantProfile>, today: NaiveDate, v: &mut FieldViolations) -> Option<Profile> {
    let Some(raw) = raw else {
        v.add("profile", "is required");
        return None;
    };
    let kind =
        required_enum::<common::ExpertKind>(raw.kind, "profile.kind", "INDIVIDUAL or UNIT_REPRESENTATIVE (D19)", v);
    let name = required_text(&raw.name, "profile.name", MAX_NAME_CHARS, v);
    if raw.gender != 0 && common::Gender::try_from(raw.gender).is_err() {
        v.add("profile.gender", "is not a known value");
    }
    let identity = identity_document(raw.identity.as_ref(), "profile.identity", today, v);
    let birth_date = optional_date(raw.birth_date.as_ref(), "profile.birth_date", v);
    if let (Some(born), Some(doc)) = (birth_date, identity.as_ref()) {
        if born > today {
            v.add("profile.birth_date", "must not be in the future");
        } else if doc.birth_date().is_some_and(|d| d != born) {
            v.add("profile.birth_date", "does not match the birth date in the identity number");
        }
    }
    locality(raw.locality.as_ref(), "profile.locality", v);
    let contact = contact(raw.contact.as_ref(), "profile.contact", v);
    let bank_account = bank_account(raw.bank_account.as_ref(), "profile.bank_account", v);
    if let Some(e) = raw.employer.as_ref() {
        let org = e.organisation.as_ref().filter(|o| !organisation_is_empty(o));
        let empty = org.is_none() && e.post.trim().is_empty() && e.since.is_none_or(|d| d == common::Date::default());
        if !empty {
            match org {
                Some(o) => organisation(o, "profile.employer.organisation", v),
                None => v.add("profile.employer.organisation", "is required: the employing organisation's name"),
            }
            optional_text(&e.post, "profile.employer.post", MAX_SHORT_CHARS, v);
            if optional_date(e.since.as_ref(), "profile.employer.since", v).is_some_and(|d| d > today) {
                v.add("profile.employer.since", "must not be in the future");
            }
        }
    }
    let unit = raw.represented_unit.as_ref().filter(|o| !organisation_is_empty(o));
    match (kind, unit) {
        (Some(common::ExpertKind::UnitRepresentative), Some(o)) => organisation(o, "profile.represented_unit", v),
        (Some(common::ExpertKind::UnitRepresentative), None) => {
            v.add("profile.represented_unit", "is required for a unit representative: the unit represented (D19)")
        }
        (Some(_), Some(_)) => v.add("profile.represented_unit", "is only for a unit representative"),
        _ => {}
    }
    optional_text(&raw.professional_title, "profile.professional_title", MAX_SHORT_CHARS, v);
    if raw.civil_servant_status != 0 && common::CivilServantStatus::try_from(raw.civil_servant_status).is_err() {
        v.add("profile.civil_servant_status", "is not a known value");
    }
    categories(&raw.categories, v);
    conditions(&raw.conditions, v);
    specialties(&raw.specialties, v);
    for (i, &county) in raw.preferred_counties.iter().enumerate() {
        if !Bureau::from_proto(county).is_some_and(Bureau::is_county) {
            v.add(format!("profile.preferred_counties[{i}]"), "must be one of the seven counties of Jiangmen");
        }
    }
    optional_text(&raw.availability_notes, "profile.availability_notes", MAX_TEXT_CHARS, v);
    count(raw.conflict_declarations.len(), "profile.conflict_declarations", v);
    for (i, d) in raw.conflict_declarations.iter().enumerate() {
        let field = format!("profile.conflict_declarations[{i}]");
        required_enum::<common::RelationType>(d.r#type, &format!("{field}.type"), "a relation type", v);
        optional_text(&d.detail, &format!("{field}.detail"), MAX_TEXT_CHARS, v);
        optional_text(&d.counterpart_name, &format!("{field}.counterpart_name"), MAX_NAME_CHARS, v);
        optional_text(&d.counterpart_role, &format!("{field}.counterpart_role"), MAX_SHORT_CHARS, v);
    }

    let mut rest = raw.clone();
    rest.name = String::new();
    rest.identity = None;
    rest.contact = None;
    rest.bank_account = None;
    Some(Profile { name, identity: identity?, contact: contact?, bank_account, rest })
}

fn count(n: usize, field: &str, v: &mut FieldViolations) {
    if n > MAX_ITEMS {
        v.add(field, format!("must have at most {MAX_ITEMS} items"));
    }
}

fn material_ids(ids: &[String], field: &str, v: &mut FieldViolations) {
    count(ids.len(), field, v);
    for (j, id) in ids.iter().enumerate() {
        if MaterialId::parse(id).is_none() {
            v.add(format!("{field}[{j}]"), "is not a material id (`mat_...`)");
        }
    }
}

fn categories(raw: &[pb::CategoryClaim], v: &mut FieldViolations) {
    if raw.is_empty() {
        v.add("profile.categories", "must claim at least one of the 11 categories of article 5");
    }
    count(raw.len(), "profile.categories", v);
    let mut seen = HashSet::new();
    for (i, c) in raw.iter().enumerate() {
        let field = format!("profile.categories[{i}]");
        if required_enum::<common::ExpertCategory>(
            c.category,
            &format!("{field}.category"),
            "one of the 11 categories of article 5",
            v,
        )
        .is_some()
            && !seen.insert(c.category)
        {
            v.add(format!("{field}.category"), "is claimed twice");
        }
        material_ids(&c.material_ids, &format!("{field}.material_ids"), v);
        optional_date(c.valid_until.as_ref(), &format!("{field}.valid_until"), v);
        optional_text(&c.note, &format!("{field}.note"), MAX_TEXT_CHARS, v);
    }
}

fn conditions(raw: &[pb::ConditionAttestation], v: &mut FieldViolations) {
    let mut seen = HashSet::new();
    for (i, c) in raw.iter().enumerate() {
        let field = format!("profile.conditions[{i}]");
        if required_enum::<common::EligibilityCondition>(
            c.condition,
            &format!("{field}.condition"),
            "one of the four conditions of article 6",
            v,
        )
        .is_some()
            && !seen.insert(c.condition)
        {
            v.add(format!("{field}.condition"), "is attested twice");
        }
        required_text(&c.declaration, &format!("{field}.declaration"), MAX_TEXT_CHARS, v);
        material_ids(&c.material_ids, &format!("{field}.material_ids"), v);
    }
}

fn specialties(raw: &[common::Specialty], v: &mut FieldViolations) {
    count(raw.len(), "profile.specialties", v);
    for (i, s) in raw.iter().enumerate() {
        let field = format!("profile.specialties[{i}]");
        if s.code.as_ref().and_then(|c| SpecialtyCode::parse(c.code.trim())).is_none() {
            v.add(format!("{field}.code"), "must be an occupational classification code such as 4-07-05-01");
        }
        if s.level != 0 && common::SkillLevel::try_from(s.level).is_err() {
            v.add(format!("{field}.level"), "is not a known value");
        }
        optional_text(&s.note, &format!("{field}.note"), MAX_SHORT_CHARS, v);
    }
}

/// An identity document validated per D19 with the kit (as the registry does): the type, then
/// the number for that type (check character, birth date, prefix or format), and a passport's
/// issuing country.
pub fn identity_document(
    raw: Option<&common::IdentityDocument>,
    field: &str,
    today: NaiveDate,
    v: &mut FieldViolations,
) -> Option<IdentityDocument> {
    let Some(raw) = raw else {
        v.add(field, "is required");
        return None;
    };
    let kind = match common::IdentityDocumentType::try_from(raw.r#type) {
        Ok(t) if raw.r#type != 0 => {
            DocumentType::from_code(t.as_str_name().trim_start_matches("IDENTITY_DOCUMENT_TYPE_"))
        }
        _ => None,
    };
    let Some(kind) = kind else {
        v.add(format!("{field}.type"), "must be one of the identity documents of D19");
        return None;
    };
    match IdentityDocument::parse(kind, &raw.number, &raw.issuing_country, today) {
        Ok(doc) => Some(doc),
        Err(err @ DocumentError::IssuingCountry) => {
            v.add(format!("{field}.issuing_country"), err.to_string());
            None
        }
        Err(err) => {
            v.add(format!("{field}.number"), err.to_string());
            None
        }
    }
}

fn locality(raw: Option<&common::Locality>, field: &str, v: &mut FieldViolations) {
    use common::locality::Place;
    match raw.and_then(|l| l.place.as_ref()) {
        Some(Place::County(code)) => {
            if !Bureau::from_proto(*code).is_some_and(Bureau::is_county) {
                v.add(
                    format!("{field}.county"),
                    "must be one of the seven county codes of Jiangmen (440703 ... 440785)",
                );
            }
        }
        Some(Place::OutsideJiangmen(place)) => {
            required_text(place, &format!("{field}.outside_jiangmen"), MAX_SHORT_CHARS, v);
        }
        None => v.add(field, "is required: a county of Jiangmen, or outside_jiangmen with the place"),
    }
}

fn contact(raw: Option<&common::ContactDetails>, field: &str, v: &mut FieldViolations) -> Option<Contact> {
    supervision_kit::contact::contact(raw, field, MAX_ADDRESS_CHARS, v)
}

fn bank_account(raw: Option<&common::BankAccount>, field: &str, v: &mut FieldViolations) -> Option<BankAccount> {
    supervision_kit::contact::bank_account(raw, field, MAX_NAME_CHARS, MAX_SHORT_CHARS, v)
}

fn organisation_is_empty(o: &common::Organisation) -> bool {
    o.name.trim().is_empty() && o.credit_code.trim().is_empty() && o.institution_id.trim().is_empty()
}

fn organisation(raw: &common::Organisation, field: &str, v: &mut FieldViolations) {
    required_text(&raw.name, &format!("{field}.name"), MAX_SHORT_CHARS, v);
    if !raw.credit_code.trim().is_empty()
        && let Err(err) = CreditCode::parse(&raw.credit_code)
    {
        v.add(format!("{field}.credit_code"), err.to_string());
    }
    if !raw.institution_id.trim().is_empty()
        && !supervision_kit::vocab::is_prefixed_id(raw.institution_id.trim(), "ins_")
    {
        v.add(format!("{field}.institution_id"), "is not an institution id");
    }
}

/// A validated UploadMaterial: an application's file of at most 10 MiB.
pub fn new_material(req: &pb::UploadMaterialRequest) -> Result<NewMaterial, Status> {
    use pb::upload_material_request::Owner;
    let mut v = FieldViolations::new();
    let application_id = match req.owner.as_ref() {
        Some(Owner::ApplicationId(id)) => {
            let id = ApplicationId::parse(id);
            if id.is_none() {
                v.add("application_id", "is not an application id");
            }
            id
        }
        Some(Owner::RenewalId(_)) => {
            v.add("renewal_id", "materials of renewals are not accepted yet; attach them to an application");
            None
        }
        Some(Owner::ObjectionId(_)) => {
            v.add("objection_id", "materials of objections are not accepted yet; attach them to an application");
            None
        }
        None => {
            v.add("application_id", "is required: the application the material belongs to");
            None
        }
    };
    let kind = required_enum::<pb::MaterialKind>(req.kind, "kind", "a material kind", &mut v);
    let category = match req.category {
        0 => String::new(),
        c => common::ExpertCategory::try_from(c).map(|c| c.as_str_name().to_owned()).unwrap_or_else(|_| {
            v.add("category", "is not one of the 11 categories of article 5");
            String::new()
        }),
    };
    let condition = match req.condition {
        0 => String::new(),
        c => common::EligibilityCondition::try_from(c).map(|c| c.as_str_name().to_owned()).unwrap_or_else(|_| {
            v.add("condition", "is not one of the four conditions of article 6");
            String::new()
        }),
    };
    let file_name = required_text(&req.file_name, "file_name", MAX_FILE_NAME_CHARS, &mut v);
    if file_name.contains(['/', '\\']) {
        v.add("file_name", "must be a file name without a directory");
    }
    let media_type = req.media_type.trim().to_ascii_lowercase();
    if !MEDIA_TYPES.contains(&media_type.as_str()) {
        v.add("media_type", format!("must be one of {}", MEDIA_TYPES.join(", ")));
    }
    if req.content.is_empty() {
        v.add("content", "is empty");
    } else if req.content.len() > MAX_MATERIAL_BYTES {
        v.add(
            "content",
            format!("is {} bytes; a material may be at most 10 MiB ({MAX_MATERIAL_BYTES} bytes)", req.content.len()),
        );
    }
    let description = optional_text(&req.description, "description", MAX_SHORT_CHARS, &mut v);
    v.check()?;
    Ok(NewMaterial {
        application_id: application_id.expect("checked above"),
        kind: kind.expect("checked above").as_str_name().to_owned(),
        category,
        condition,
        file_name,
        media_type,
        description,
        content: req.content.clone(),
    })
}

/// A validated SubmitApplication: the commitment must be given.
pub fn submission(
    req: &pb::SubmitApplicationRequest,
    staff_entry: bool,
    now: DateTime<Utc>,
) -> Result<(ApplicationId, String, Option<OnBehalf>), Status> {
    let mut v = FieldViolations::new();
    let id = ApplicationId::parse(&req.application_id);
    if id.is_none() {
        v.add("application_id", "is not an application id");
    }
    if !req.commit_truthful {
        v.add(
            "commit_truthful",
            "must be true: the applicant commits that the contents are true and valid (article 7(二))",
        );
    }
    let version = required_text(&req.commitment_text_version, "commitment_text_version", 50, &mut v);
    let on_behalf = on_behalf_rule(req.on_behalf.as_ref(), staff_entry, now, &mut v);
    v.check()?;
    Ok((id.expect("checked above"), version, on_behalf))
}

pub fn withdrawal(
    req: &pb::WithdrawApplicationRequest,
    staff_entry: bool,
    now: DateTime<Utc>,
) -> Result<(ApplicationId, String, Option<OnBehalf>), Status> {
    let mut v = FieldViolations::new();
    let id = ApplicationId::parse(&req.application_id);
    if id.is_none() {
        v.add("application_id", "is not an application id");
    }
    let reason = optional_text(&req.reason, "reason", MAX_TEXT_CHARS, &mut v);
    let on_behalf = on_behalf_rule(req.on_behalf.as_ref(), staff_entry, now, &mut v);
    v.check()?;
    Ok((id.expect("checked above"), reason, on_behalf))
}

/// A validated ListApplications; the identity document is left for the caller to index.
pub fn application_listing(
    req: &pb::ListApplicationsRequest,
    today: NaiveDate,
) -> Result<(ApplicationFilter, Option<IdentityDocument>, Page), Status> {
    let mut v = FieldViolations::new();
    let page = Page::parse(req.page.as_ref(), "page", |t| ApplicationId::parse(t).is_some(), &mut v);
    let call_id = match req.call_id.trim() {
        "" => None,
        id if CallId::parse(id).is_some() => Some(id.to_owned()),
        _ => {
            v.add("call_id", "is not a call id");
            None
        }
    };
    let status = match pb::ApplicationStatus::try_from(req.status) {
        Ok(pb::ApplicationStatus::Unspecified) => None,
        Ok(s) => ApplicationStatus::from_code(s.as_str_name().trim_start_matches("APPLICATION_STATUS_")),
        Err(_) => {
            v.add("status", "is not an application status");
            None
        }
    };
    let name_contains = optional_text(&req.name_contains, "name_contains", MAX_NAME_CHARS, &mut v);
    if !req.publicity_batch_id.trim().is_empty() {
        v.add("publicity_batch_id", "publicity batches are not recorded yet");
    }
    let identity = req
        .identity
        .as_ref()
        .filter(|d| d.r#type != 0 || !d.number.trim().is_empty())
        .and_then(|d| identity_document(Some(d), "identity", today, &mut v));
    v.check()?;
    let filter = ApplicationFilter {
        call_id,
        status,
        name_contains: (!name_contains.is_empty()).then_some(name_contains),
        identity_index: None,
        owner_subject: None,
    };
    Ok((filter, identity, page))
}

/// A validated RecordReview: each verdict with the field naming it.
pub fn review(req: &pb::RecordReviewRequest) -> Result<(ApplicationId, Vec<(String, ReviewInput)>), Status> {
    use pb::review_target::Item;
    let mut v = FieldViolations::new();
    let id = ApplicationId::parse(&req.application_id);
    if id.is_none() {
        v.add("application_id", "is not an application id");
    }
    if req.items.is_empty() {
        v.add("items", "must hold at least one verdict");
    }
    count(req.items.len(), "items", &mut v);
    let mut inputs = Vec::new();
    for (i, item) in req.items.iter().enumerate() {
        let field = format!("items[{i}]");
        let target = match item.target.as_ref().and_then(|t| t.item.as_ref()) {
            Some(Item::Condition(c)) => common::EligibilityCondition::try_from(*c)
                .ok()
                .filter(|_| *c != 0)
                .map(|c| ReviewTarget::Condition(c.as_str_name().to_owned())),
            Some(Item::Category(c)) => common::ExpertCategory::try_from(*c)
                .ok()
                .filter(|_| *c != 0)
                .map(|c| ReviewTarget::Category(c.as_str_name().to_owned())),
            Some(Item::MaterialId(m)) => MaterialId::parse(m).map(ReviewTarget::Material),
            None => None,
        };
        if target.is_none() {
            v.add(format!("{field}.target"), "must name a condition, a category or a material (`mat_...`)");
        }
        let verdict = match pb::ReviewVerdict::try_from(item.verdict) {
            Ok(pb::ReviewVerdict::Approved) => Some(Verdict::Approved),
            Ok(pb::ReviewVerdict::Rejected) => Some(Verdict::Rejected),
            Ok(pb::ReviewVerdict::Returned) => Some(Verdict::Returned),
            _ => {
                v.add(format!("{field}.verdict"), "must be APPROVED, REJECTED or RETURNED");
                None
            }
        };
        let reason = optional_text(&item.reason, &format!("{field}.reason"), MAX_TEXT_CHARS, &mut v);
        if matches!(verdict, Some(Verdict::Rejected | Verdict::Returned)) && reason.is_empty() {
            v.add(format!("{field}.reason"), "is required when an item is rejected or returned");
        }
        if let (Some(target), Some(verdict)) = (target, verdict) {
            inputs.push((field, ReviewInput { target, verdict, reason }));
        }
    }
    v.check()?;
    Ok((id.expect("checked above"), inputs))
}

/// A validated ConcludeReview: the outcome and, unless it passed, the reason.
pub fn conclusion(req: &pb::ConcludeReviewRequest) -> Result<(ApplicationId, Outcome, String), Status> {
    let mut v = FieldViolations::new();
    let id = ApplicationId::parse(&req.application_id);
    if id.is_none() {
        v.add("application_id", "is not an application id");
    }
    let outcome = match pb::ReviewOutcome::try_from(req.outcome) {
        Ok(pb::ReviewOutcome::Passed) => Some(Outcome::Passed),
        Ok(pb::ReviewOutcome::Rejected) => Some(Outcome::Rejected),
        Ok(pb::ReviewOutcome::Returned) => Some(Outcome::Returned),
        _ => {
            v.add("outcome", "must be PASSED, REJECTED or RETURNED");
            None
        }
    };
    let reason = optional_text(&req.reason, "reason", MAX_TEXT_CHARS, &mut v);
    if matches!(outcome, Some(Outcome::Rejected | Outcome::Returned)) && reason.is_empty() {
        v.add("reason", "is required unless the review passed; the applicant is shown it");
    }
    v.check()?;
    Ok((id.expect("checked above"), outcome.expect("checked above"), reason))
}

// ------------------------------------------------------------------------------------------
// domain -> proto
// ------------------------------------------------------------------------------------------

fn document_type(d: &IdentityDocument) -> i32 {
    common::IdentityDocumentType::from_str_name(&format!("IDENTITY_DOCUMENT_TYPE_{}", d.kind.code()))
        .map_or(0, |t| t as i32)
}

/// The profile as `visibility` allows: masked numbers, no postal address and no birth date
/// (with a masked number the birth date would give most of it back, personal.rs).
pub fn profile_to_proto(p: &Profile, visibility: Visibility) -> pb::ApplicantProfile {
    let masked = visibility == Visibility::Masked;
    let mut out = p.rest.clone();
    out.name.clone_from(&p.name);
    if masked {
        out.birth_date = None;
    }
    out.identity = Some(common::IdentityDocument {
        r#type: document_type(&p.identity),
        number: if masked { mask_document(p.identity.number()) } else { p.identity.number().to_owned() },
        issuing_country: p.identity.issuing_country.clone(),
        masked,
    });
    let c = &p.contact;
    out.contact = Some(if masked {
        common::ContactDetails {
            mobile: mask_mobile(&c.mobile),
            email: if c.email.is_empty() { String::new() } else { mask_email(&c.email) },
            address: String::new(),
            masked: true,
        }
    } else {
        common::ContactDetails { mobile: c.mobile.clone(), email: c.email.clone(), address: c.address.clone(), masked }
    });
    out.bank_account = p.bank_account.as_ref().map(|a| common::BankAccount {
        holder_name: a.holder_name.clone(),
        bank_name: a.bank_name.clone(),
        branch_name: a.branch_name.clone(),
        account_number: if masked { mask_account(&a.account_number) } else { a.account_number.clone() },
        masked,
    });
    out
}

fn on_behalf_to_proto(o: &OnBehalf) -> common::OnBehalf {
    common::OnBehalf {
        channel: common::EntryChannel::from_str_name(&o.channel).map_or(0, |c| c as i32),
        received_time: Some(timestamp(o.received_at)),
        note: o.note.clone(),
    }
}

pub fn material_to_proto(m: &Material) -> pb::Material {
    pb::Material {
        id: m.id.to_string(),
        application_id: m.application_id.to_string(),
        renewal_id: String::new(),
        objection_id: String::new(),
        kind: pb::MaterialKind::from_str_name(&m.kind).map_or(0, |k| k as i32),
        category: common::ExpertCategory::from_str_name(&m.category).map_or(0, |c| c as i32),
        condition: common::EligibilityCondition::from_str_name(&m.condition).map_or(0, |c| c as i32),
        document: Some(common::DocumentRef {
            id: m.id.to_string(),
            file_name: m.file_name.clone(),
            media_type: m.media_type.clone(),
            size_bytes: m.size_bytes,
            sha256: m.sha256.clone(),
        }),
        description: m.description.clone(),
        uploaded_by: Some(actor_to_proto(&m.uploaded_by)),
        upload_time: Some(timestamp(m.uploaded_at)),
        removed: m.removed,
    }
}

fn review_item_to_proto(i: &ReviewItem) -> pb::ReviewItem {
    use pb::review_target::Item;
    let item = match &i.input.target {
        ReviewTarget::Condition(c) => {
            Item::Condition(common::EligibilityCondition::from_str_name(c).map_or(0, |c| c as i32))
        }
        ReviewTarget::Category(c) => Item::Category(common::ExpertCategory::from_str_name(c).map_or(0, |c| c as i32)),
        ReviewTarget::Material(m) => Item::MaterialId(m.to_string()),
    };
    pb::ReviewItem {
        id: i.id.to_string(),
        target: Some(pb::ReviewTarget { item: Some(item) }),
        verdict: pb::ReviewVerdict::from_str_name(&format!("REVIEW_VERDICT_{}", i.input.verdict.code()))
            .map_or(0, |v| v as i32),
        reason: i.input.reason.clone(),
        reviewer: Some(actor_to_proto(&i.reviewer)),
        review_time: Some(timestamp(i.reviewed_at)),
        submission_number: i.submission_number,
    }
}

fn conclusion_to_proto(c: &Conclusion) -> pb::ReviewConclusion {
    pb::ReviewConclusion {
        outcome: pb::ReviewOutcome::from_str_name(&format!("REVIEW_OUTCOME_{}", c.outcome.code()))
            .map_or(0, |o| o as i32),
        reason: c.reason.clone(),
        reviewer: Some(actor_to_proto(&c.reviewer)),
        conclude_time: Some(timestamp(c.concluded_at)),
    }
}

pub fn application_to_proto(a: &Application, visibility: Visibility) -> pb::Application {
    pb::Application {
        id: a.id.to_string(),
        call_id: a.call_id.to_string(),
        profile: Some(profile_to_proto(&a.profile, visibility)),
        replaces_expert_id: a.replaces_expert_id.clone(),
        materials: a.materials.iter().map(material_to_proto).collect(),
        attestation: a.attestation.as_ref().map(|t| pb::Attestation {
            text_version: t.text_version.clone(),
            text: t.text.clone(),
            attest_time: Some(timestamp(t.attested_at)),
            on_behalf: t.on_behalf.as_ref().map(on_behalf_to_proto),
        }),
        status: pb::ApplicationStatus::from_str_name(&format!("APPLICATION_STATUS_{}", a.status.code()))
            .map_or(0, |s| s as i32),
        submission_count: a.submission_count,
        created_by: Some(actor_to_proto(&a.created_by)),
        on_behalf: a.on_behalf.as_ref().map(on_behalf_to_proto),
        submit_time: a.submitted_at.map(timestamp),
        review_items: a.review_items.iter().map(review_item_to_proto).collect(),
        conclusion: a.conclusion.as_ref().map(conclusion_to_proto),
        revision: a.revision,
        create_time: Some(timestamp(a.created_at)),
        update_time: Some(timestamp(a.updated_at)),
        ..Default::default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()
    }

    pub fn valid_profile() -> pb::ApplicantProfile {
        pb::ApplicantProfile {
            kind: common::ExpertKind::Individual as i32,
            name: "李四".into(),
            identity: Some(common::IdentityDocument {
                r#type: common::IdentityDocumentType::ResidentIdCard as i32,
                number: "11010519491231002X".into(),
                issuing_country: String::new(),
                masked: false,
            }),
            locality: Some(common::Locality {
                place: Some(common::locality::Place::County(Bureau::Kaiping.to_proto() as i32)),
            }),
            contact: Some(common::ContactDetails {
                mobile: "13800138000".into(),
                email: "li@example.com".into(),
                address: "江门市蓬江区".into(),
                masked: false,
            }),
            categories: vec![pb::CategoryClaim {
                category: common::ExpertCategory::Technician as i32,
                ..Default::default()
            }],
            conditions: crate::domain::application::CONDITIONS
                .iter()
                .map(|c| pb::ConditionAttestation {
                    condition: common::EligibilityCondition::from_str_name(c).unwrap() as i32,
                    declaration: "本人符合".into(),
                    material_ids: vec![],
                })
                .collect(),
            ..Default::default()
        }
    }

    fn fields(v: FieldViolations) -> Vec<String> {
        use tonic_types::StatusExt;
        let status = v.check().unwrap_err();
        status.get_error_details().bad_request().unwrap().field_violations.iter().map(|f| f.field.clone()).collect()
    }

    #[test]
    fn a_valid_profile_converts_without_personal_data_in_the_rest() {
        let mut v = FieldViolations::new();
        let p = profile(Some(&valid_profile()), today(), &mut v).unwrap();
        assert!(v.is_empty());
        assert_eq!(p.identity.number(), "11010519491231002X");
        assert!(p.rest.identity.is_none() && p.rest.contact.is_none() && p.rest.name.is_empty());
        let masked = profile_to_proto(&p, Visibility::Masked);
        assert_eq!(masked.identity.unwrap().number, "**************002X");
        assert_eq!(masked.contact.unwrap().mobile, "138****8000");
        assert_eq!(profile_to_proto(&p, Visibility::Full).identity.unwrap().number, "11010519491231002X");
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut raw = valid_profile();
        raw.identity.as_mut().unwrap().number = "110105194912310021".into();
        raw.contact.as_mut().unwrap().mobile = "12345".into();
        raw.kind = common::ExpertKind::UnitRepresentative as i32;
        raw.categories[0].category = 0;
        let mut v = FieldViolations::new();
        assert!(profile(Some(&raw), today(), &mut v).is_none());
        assert_eq!(
            fields(v),
            [
                "profile.identity.number",
                "profile.contact.mobile",
                "profile.represented_unit",
                "profile.categories[0].category"
            ]
        );
    }
}
