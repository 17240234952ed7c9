//! proto <-> domain for experts. Every problem with a request becomes a field violation naming
//! the field by its path in the request (`profile.identity.number`,
//! `profile.categories[1].evidence`); responses mask personal data by [`Visibility`].

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use supervision_kit::{
    Bureau, FieldViolations, Page, SpecialtyCode,
    auth::Actor,
    convert::{
        date, long_text, on_behalf, optional_date, optional_text, required_date, required_enum, required_text,
        timestamp,
    },
    credit_code::CreditCode,
    identity::{DocumentError, DocumentType, IdentityDocument},
    personal::{mask_account, mask_document, mask_email, mask_mobile},
    vocab::OnBehalf,
};
use supervision_proto::{common, registry as pb};
use tonic::Status;

use crate::domain::{
    BankAccount, Category, CategoryHolding, ChangeId, CivilServantPeriod, CivilServantStatus, Condition,
    ConditionRecord, Contact, DocumentRef, Employer, Evidence, Expert, ExpertChange, ExpertFilter, ExpertId,
    ExpertKind, ExpertStatus, Gender, InstitutionId, Locality, Organisation, Profile, ProfilePatch, ProfilePath,
    SkillLevel, Specialty, Visibility,
    civil_servant::{period_on, periods},
};

const MAX_NAME_CHARS: usize = 100;
const MAX_ORGANISATION_CHARS: usize = 200;
const MAX_SHORT_CHARS: usize = 100;
const MAX_ADDRESS_CHARS: usize = 500;
const MAX_NOTE_CHARS: usize = 1000;
const MAX_REASON_CHARS: usize = 500;
/// GetPayee's `purpose`: finance writes `<export id> <kind> (request <request id>)`, and a request
/// id may be 128 characters (`supervision_kit::idempotency::MAX_REQUEST_ID_LEN`), so about 200.
const MAX_PURPOSE_CHARS: usize = 300;
const MAX_OTHER_DOCUMENTS: usize = 5;
const MAX_DOCUMENTS_PER_EVIDENCE: usize = 20;
const MAX_SPECIALTIES: usize = 20;

/// A validated CreateExpert request.
#[derive(Debug, Clone)]
pub struct NewExpert {
    pub profile: Profile,
    pub civil_servant_status: CivilServantStatus,
    /// From when the status holds; `None` for "as far back as asked".
    pub civil_servant_since: Option<NaiveDate>,
}

/// A validated UpdateExpert request.
#[derive(Debug, Clone)]
pub struct ExpertUpdate {
    pub id: ExpertId,
    pub patch: ProfilePatch,
    pub expected_revision: i64,
    pub reason: String,
    pub on_behalf: Option<OnBehalf>,
}

/// A validated ListExperts request; the identity document is turned into its blind index by the
/// use case, which holds the key.
#[derive(Debug, Clone)]
pub struct ExpertListing {
    pub filter: ExpertFilter,
    pub identity: Option<IdentityDocument>,
    pub page: Page,
}

/// A validated ConfirmExpertData request.
#[derive(Debug, Clone)]
pub struct Confirmation {
    pub expert_id: ExpertId,
    pub year: i32,
    pub note: String,
    pub on_behalf: Option<OnBehalf>,
}

/// A validated RecordCivilServantStatus request.
#[derive(Debug, Clone)]
pub struct NewCivilServantEntry {
    pub expert_id: ExpertId,
    pub status: CivilServantStatus,
    pub valid_from: NaiveDate,
    pub evidence: Evidence,
    pub on_behalf: Option<OnBehalf>,
}

pub fn expert_id(raw: &str, field: &str) -> Result<ExpertId, Status> {
    ExpertId::parse(raw.trim()).ok_or_else(|| supervision_kit::error::invalid_field(field, "is not an expert id"))
}

pub fn new_expert(req: &pb::CreateExpertRequest, today: NaiveDate) -> Result<NewExpert, Status> {
    let mut v = FieldViolations::new();
    let patch = match &req.profile {
        Some(raw) => profile_patch(raw, ProfilePath::ALL, today, &mut v),
        None => {
            v.add("profile", "is required");
            ProfilePatch::default()
        }
    };
    let status = civil_servant_status(req.civil_servant_status, "civil_servant_status", &mut v);
    let since = optional_date(req.civil_servant_since.as_ref(), "civil_servant_since", &mut v);
    v.check()?;
    let profile = patch.into_profile().expect("a clean conversion of every path holds every required part");
    let mut v = FieldViolations::new();
    for (field, problem) in profile.problems() {
        v.add(field, problem);
    }
    v.check()?;
    Ok(NewExpert { profile, civil_servant_status: status.expect("checked above"), civil_servant_since: since })
}

pub fn expert_update(
    req: &pb::UpdateExpertRequest,
    now: DateTime<Utc>,
    today: NaiveDate,
) -> Result<ExpertUpdate, Status> {
    let mut v = FieldViolations::new();
    let id = ExpertId::parse(req.id.trim());
    if id.is_none() {
        v.add("id", "is not an expert id");
    }
    let paths = mask_paths(req.update_mask.as_ref(), &mut v);
    let patch = match (&req.profile, paths.is_empty()) {
        (Some(raw), _) => profile_patch(raw, &paths, today, &mut v),
        (None, false) => {
            v.add("profile", "is required: it holds the new values of the fields named in update_mask");
            ProfilePatch::default()
        }
        (None, true) => ProfilePatch::default(),
    };
    if req.expected_revision < 0 {
        v.add("expected_revision", "must not be negative (0 skips the check)");
    }
    let reason = required_text(&req.reason, "reason", MAX_REASON_CHARS, &mut v);
    let on_behalf = on_behalf(req.on_behalf.as_ref(), "on_behalf", now, &mut v);
    v.check()?;
    Ok(ExpertUpdate {
        id: id.expect("checked above"),
        patch,
        expected_revision: req.expected_revision,
        reason,
        on_behalf,
    })
}

fn mask_paths(mask: Option<&prost_types::FieldMask>, v: &mut FieldViolations) -> Vec<ProfilePath> {
    let raw = mask.map(|m| m.paths.as_slice()).unwrap_or_default();
    if raw.is_empty() {
        v.add("update_mask", "must name at least one field of ExpertProfile, e.g. `contact`");
    }
    let mut paths = Vec::new();
    for (i, path) in raw.iter().enumerate() {
        let path = path.trim().trim_start_matches("profile.");
        match ProfilePath::from_code(path) {
            Some(p) if !paths.contains(&p) => paths.push(p),
            Some(_) => v.add(format!("update_mask.paths[{i}]"), format!("`{path}` is named twice")),
            None => {
                let parent = path.split('.').next().and_then(ProfilePath::from_code);
                let hint = match parent {
                    Some(parent) => format!("name `{}` whole: nested fields are replaced with it", parent.code()),
                    None => "is not a field of ExpertProfile".to_owned(),
                };
                v.add(format!("update_mask.paths[{i}]"), format!("`{path}`: {hint}"));
            }
        }
    }
    paths
}

/// The parts of `raw` that `paths` name, each checked.
pub(crate) fn profile_patch(
    raw: &pb::ExpertProfile,
    paths: &[ProfilePath],
    today: NaiveDate,
    v: &mut FieldViolations,
) -> ProfilePatch {
    let mut patch = ProfilePatch::default();
    for path in paths {
        match path {
            ProfilePath::Kind => {
                patch.kind = required_coded(
                    raw.kind,
                    "profile.kind",
                    "INDIVIDUAL or UNIT_REPRESENTATIVE",
                    "EXPERT_KIND_",
                    |p: common::ExpertKind| p.as_str_name(),
                    ExpertKind::from_code,
                    v,
                );
            }
            ProfilePath::Name => patch.name = Some(required_text(&raw.name, "profile.name", MAX_NAME_CHARS, v)),
            ProfilePath::Gender => {
                patch.gender = Some(if raw.gender == 0 {
                    None
                } else {
                    required_coded(
                        raw.gender,
                        "profile.gender",
                        "MALE or FEMALE",
                        "GENDER_",
                        |p: common::Gender| p.as_str_name(),
                        Gender::from_code,
                        v,
                    )
                });
            }
            ProfilePath::BirthDate => {
                let birth = optional_date(raw.birth_date.as_ref(), "profile.birth_date", v);
                if birth.is_some_and(|b| b > today) {
                    v.add("profile.birth_date", "must not be in the future");
                }
                patch.birth_date = Some(birth);
            }
            ProfilePath::Identity => {
                patch.identity = identity_document(raw.identity.as_ref(), "profile.identity", today, v);
            }
            ProfilePath::OtherIdentities => {
                if raw.other_identities.len() > MAX_OTHER_DOCUMENTS {
                    v.add("profile.other_identities", format!("at most {MAX_OTHER_DOCUMENTS} further documents"));
                }
                let docs = raw
                    .other_identities
                    .iter()
                    .enumerate()
                    .filter_map(|(i, d)| {
                        identity_document(Some(d), &format!("profile.other_identities[{i}]"), today, v)
                    })
                    .collect();
                patch.other_identities = Some(docs);
            }
            ProfilePath::Locality => patch.locality = locality(raw.locality.as_ref(), "profile.locality", v),
            ProfilePath::Contact => patch.contact = contact(raw.contact.as_ref(), "profile.contact", v),
            ProfilePath::BankAccount => {
                patch.bank_account = Some(bank_account(raw.bank_account.as_ref(), "profile.bank_account", v));
            }
            ProfilePath::Employer => {
                patch.employer = Some(employer(raw.employer.as_ref(), "profile.employer", today, v));
            }
            ProfilePath::RepresentedUnit => {
                patch.represented_unit = Some(
                    raw.represented_unit
                        .as_ref()
                        .filter(|o| !organisation_is_empty(o))
                        .map(|o| organisation(o, "profile.represented_unit", v)),
                );
            }
            ProfilePath::Categories => patch.categories = Some(categories(&raw.categories, today, v)),
            ProfilePath::Conditions => patch.conditions = Some(conditions(&raw.conditions, today, v)),
            ProfilePath::Specialties => patch.specialties = Some(specialties(&raw.specialties, v)),
            ProfilePath::ProfessionalTitle => {
                patch.professional_title =
                    Some(optional_text(&raw.professional_title, "profile.professional_title", MAX_SHORT_CHARS, v));
            }
        }
    }
    patch
}

/// A required contract enum value, turned into a domain enum through its name (`PREFIX_CODE`).
pub(crate) fn required_coded<P: TryFrom<i32>, D>(
    value: i32,
    field: &str,
    what: &str,
    prefix: &str,
    name: impl Fn(P) -> &'static str,
    from_code: impl Fn(&str) -> Option<D>,
    v: &mut FieldViolations,
) -> Option<D> {
    let contract = required_enum::<P>(value, field, what, v)?;
    let domain = name(contract).strip_prefix(prefix).and_then(from_code);
    if domain.is_none() {
        v.add(field, format!("must be {what}"));
    }
    domain
}

/// The contract value of a domain code (`PREFIX_CODE`); 0 (unspecified) if the contract lacks it.
pub(crate) fn contract_value<P: Into<i32>>(prefix: &str, code: &str, from_name: fn(&str) -> Option<P>) -> i32 {
    from_name(&format!("{prefix}{code}")).map_or(0, Into::into)
}

pub(crate) fn civil_servant_status(value: i32, field: &str, v: &mut FieldViolations) -> Option<CivilServantStatus> {
    required_coded(
        value,
        field,
        "NONE, CIVIL_SERVANT, REFERENCE_MANAGED or PUBLIC_INSTITUTION_STAFF",
        "CIVIL_SERVANT_STATUS_",
        |p: common::CivilServantStatus| p.as_str_name(),
        CivilServantStatus::from_code,
        v,
    )
}

/// An identity document validated per D19: the type, then the number for that type (check
/// character, birth date, prefix or format), and a passport's issuing country.
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
    let kind = required_coded(
        raw.r#type,
        &format!("{field}.type"),
        "one of the identity documents of D19",
        "IDENTITY_DOCUMENT_TYPE_",
        |p: common::IdentityDocumentType| p.as_str_name(),
        DocumentType::from_code,
        v,
    )?;
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

fn locality(raw: Option<&common::Locality>, field: &str, v: &mut FieldViolations) -> Option<Locality> {
    use common::locality::Place;
    match raw.and_then(|l| l.place.as_ref()) {
        Some(Place::County(code)) => match Bureau::from_proto(*code) {
            Some(b) if b.is_county() => Some(Locality::County(b)),
            _ => {
                v.add(
                    format!("{field}.county"),
                    "must be one of the seven county codes of Jiangmen (440703 ... 440785)",
                );
                None
            }
        },
        Some(Place::OutsideJiangmen(place)) => {
            let place = required_text(place, &format!("{field}.outside_jiangmen"), MAX_SHORT_CHARS, v);
            Some(Locality::Outside(place))
        }
        None => {
            v.add(field, "is required: a county of Jiangmen, or outside_jiangmen with the place");
            None
        }
    }
}

fn contact(raw: Option<&common::ContactDetails>, field: &str, v: &mut FieldViolations) -> Option<Contact> {
    supervision_kit::contact::contact(raw, field, MAX_ADDRESS_CHARS, v)
}

fn bank_account(raw: Option<&common::BankAccount>, field: &str, v: &mut FieldViolations) -> Option<BankAccount> {
    supervision_kit::contact::bank_account(raw, field, MAX_NAME_CHARS, MAX_SHORT_CHARS, v)
}

pub(crate) fn organisation_is_empty(o: &common::Organisation) -> bool {
    o.name.trim().is_empty() && o.credit_code.trim().is_empty() && o.institution_id.trim().is_empty()
}

pub(crate) fn organisation(raw: &common::Organisation, field: &str, v: &mut FieldViolations) -> Organisation {
    let name = required_text(&raw.name, &format!("{field}.name"), MAX_ORGANISATION_CHARS, v);
    let credit_code = if raw.credit_code.trim().is_empty() {
        None
    } else {
        CreditCode::parse(&raw.credit_code).map_err(|err| v.add(format!("{field}.credit_code"), err.to_string())).ok()
    };
    let institution_id = if raw.institution_id.trim().is_empty() {
        None
    } else {
        let id = InstitutionId::parse(raw.institution_id.trim());
        if id.is_none() {
            v.add(format!("{field}.institution_id"), "is not an institution id");
        }
        id
    };
    Organisation { name, credit_code, institution_id }
}

fn employer(
    raw: Option<&common::Employer>,
    field: &str,
    today: NaiveDate,
    v: &mut FieldViolations,
) -> Option<Employer> {
    let raw = raw?;
    let org = raw.organisation.as_ref().filter(|o| !organisation_is_empty(o));
    let empty =
        org.is_none() && raw.post.trim().is_empty() && raw.since.as_ref().is_none_or(|d| *d == common::Date::default());
    if empty {
        return None;
    }
    let Some(org) = org else {
        v.add(format!("{field}.organisation"), "is required: the employing organisation's name");
        return None;
    };
    let organisation = organisation(org, &format!("{field}.organisation"), v);
    let post = optional_text(&raw.post, &format!("{field}.post"), MAX_SHORT_CHARS, v);
    let since = optional_date(raw.since.as_ref(), &format!("{field}.since"), v);
    if since.is_some_and(|d| d > today) {
        v.add(format!("{field}.since"), "must not be in the future");
    }
    Some(Employer { organisation, post, since })
}

pub(crate) fn evidence(
    raw: Option<&common::Evidence>,
    field: &str,
    required: bool,
    v: &mut FieldViolations,
) -> Evidence {
    let mut out = Evidence::default();
    if let Some(raw) = raw {
        out.description = long_text(&raw.description, &format!("{field}.description"), MAX_NOTE_CHARS, false, v);
        if raw.documents.len() > MAX_DOCUMENTS_PER_EVIDENCE {
            v.add(format!("{field}.documents"), format!("at most {MAX_DOCUMENTS_PER_EVIDENCE} files"));
        }
        for (j, d) in raw.documents.iter().enumerate() {
            let at = format!("{field}.documents[{j}]");
            let id = d.id.trim();
            let known =
                ["doc_", "mat_", "att_"].iter().any(|prefix| supervision_kit::vocab::is_prefixed_id(id, prefix));
            if !known {
                v.add(format!("{at}.id"), "must be a stored file's id (doc_..., mat_... or att_...)");
            }
            let file_name = optional_text(&d.file_name, &format!("{at}.file_name"), MAX_ORGANISATION_CHARS, v);
            let media_type = optional_text(&d.media_type, &format!("{at}.media_type"), MAX_SHORT_CHARS, v);
            if d.size_bytes < 0 {
                v.add(format!("{at}.size_bytes"), "must not be negative");
            }
            let sha_ok = d.sha256.is_empty()
                || (d.sha256.len() == 64 && d.sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            if !sha_ok {
                v.add(format!("{at}.sha256"), "must be 64 lower-case hex digits");
            }
            out.documents.push(DocumentRef {
                id: id.to_owned(),
                file_name,
                media_type,
                size_bytes: d.size_bytes,
                sha256: d.sha256.clone(),
            });
        }
    }
    if required && out.is_empty() {
        v.add(field, "is required: describe the certificate, letter or designation, or attach it");
    }
    out
}

pub(crate) fn categories(
    raw: &[pb::CategoryHolding],
    today: NaiveDate,
    v: &mut FieldViolations,
) -> Vec<CategoryHolding> {
    if raw.is_empty() {
        v.add("profile.categories", "must hold at least one of the 11 categories of article 5");
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, h) in raw.iter().enumerate() {
        let at = format!("profile.categories[{i}]");
        let category = required_coded(
            h.category,
            &format!("{at}.category"),
            "one of the 11 categories of article 5",
            "EXPERT_CATEGORY_",
            |p: common::ExpertCategory| p.as_str_name(),
            Category::from_code,
            v,
        );
        if let Some(c) = category
            && !seen.insert(c)
        {
            v.add(format!("{at}.category"), "is listed twice");
        }
        let evidence = evidence(h.evidence.as_ref(), &format!("{at}.evidence"), true, v);
        let valid_until = optional_date(h.valid_until.as_ref(), &format!("{at}.valid_until"), v);
        let verified_date = optional_date(h.verified_date.as_ref(), &format!("{at}.verified_date"), v);
        if verified_date.is_some_and(|d| d > today) {
            v.add(format!("{at}.verified_date"), "must not be in the future");
        }
        let note = long_text(&h.note, &format!("{at}.note"), MAX_NOTE_CHARS, false, v);
        if h.verified && note.is_empty() && category.is_some_and(Category::needs_justification) {
            v.add(format!("{at}.note"), "verifying category (十) needs the reviewer's justification");
        }
        if let Some(category) = category {
            out.push(CategoryHolding {
                category,
                evidence,
                valid_until,
                verified: h.verified,
                verified_by: None,
                verified_date: if h.verified { verified_date } else { None },
                note,
            });
        }
    }
    out
}

fn conditions(raw: &[pb::ConditionRecord], today: NaiveDate, v: &mut FieldViolations) -> Vec<ConditionRecord> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, c) in raw.iter().enumerate() {
        let at = format!("profile.conditions[{i}]");
        let condition = required_coded(
            c.condition,
            &format!("{at}.condition"),
            "one of the 4 conditions of article 6",
            "ELIGIBILITY_CONDITION_",
            |p: common::EligibilityCondition| p.as_str_name(),
            Condition::from_code,
            v,
        );
        if let Some(x) = condition
            && !seen.insert(x)
        {
            v.add(format!("{at}.condition"), "is listed twice");
        }
        let evidence = evidence(c.evidence.as_ref(), &format!("{at}.evidence"), false, v);
        if c.met && evidence.is_empty() {
            v.add(format!("{at}.evidence"), "a condition found met needs what shows it");
        }
        let checked_date = optional_date(c.checked_date.as_ref(), &format!("{at}.checked_date"), v);
        if checked_date.is_some_and(|d| d > today) {
            v.add(format!("{at}.checked_date"), "must not be in the future");
        }
        let note = long_text(&c.note, &format!("{at}.note"), MAX_NOTE_CHARS, false, v);
        if let Some(condition) = condition {
            out.push(ConditionRecord { condition, evidence, checked_date, checked_by: None, met: c.met, note });
        }
    }
    out
}

fn specialties(raw: &[common::Specialty], v: &mut FieldViolations) -> Vec<Specialty> {
    if raw.len() > MAX_SPECIALTIES {
        v.add("profile.specialties", format!("at most {MAX_SPECIALTIES} specialties"));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let at = format!("profile.specialties[{i}]");
        let raw_code = s.code.as_ref().map(|c| c.code.trim()).unwrap_or_default();
        let code = SpecialtyCode::parse(raw_code);
        match &code {
            None => v.add(format!("{at}.code"), "must be an occupational classification code such as 4-07-05-01"),
            Some(c) if !seen.insert(c.clone()) => v.add(format!("{at}.code"), "is listed twice"),
            Some(_) => {}
        }
        let level = if s.level == 0 {
            None
        } else {
            required_coded(
                s.level,
                &format!("{at}.level"),
                "a skill level of the national scheme",
                "SKILL_LEVEL_",
                |p: common::SkillLevel| p.as_str_name(),
                SkillLevel::from_code,
                v,
            )
        };
        let note = optional_text(&s.note, &format!("{at}.note"), MAX_ORGANISATION_CHARS, v);
        if let Some(code) = code {
            out.push(Specialty { code, level, note });
        }
    }
    out
}

pub fn expert_listing(req: &pb::ListExpertsRequest, today: NaiveDate) -> Result<ExpertListing, Status> {
    let mut v = FieldViolations::new();
    let page = Page::parse(req.page.as_ref(), "page", |t| ExpertId::parse(t).is_some(), &mut v);
    let status = (req.status != 0).then(|| {
        required_coded(
            req.status,
            "status",
            "an expert status",
            "EXPERT_STATUS_",
            |p: pb::ExpertStatus| p.as_str_name(),
            ExpertStatus::from_code,
            &mut v,
        )
    });
    let category = (req.category != 0).then(|| {
        required_coded(
            req.category,
            "category",
            "one of the 11 categories of article 5",
            "EXPERT_CATEGORY_",
            |p: common::ExpertCategory| p.as_str_name(),
            Category::from_code,
            &mut v,
        )
    });
    let specialty_prefix = if req.specialty_code.trim().is_empty() {
        None
    } else {
        let code = SpecialtyCode::parse(req.specialty_code.trim());
        if code.is_none() {
            v.add("specialty_code", "must be a code or group of the occupational classification, e.g. 4-07");
        }
        code.map(|c| c.as_str().to_owned())
    };
    let county = if req.county == 0 {
        None
    } else {
        match Bureau::from_proto(req.county) {
            Some(b) if b.is_county() => Some(b),
            _ => {
                v.add("county", "must be one of the seven county codes of Jiangmen (440703 ... 440785)");
                None
            }
        }
    };
    if req.outside_jiangmen && req.county != 0 {
        v.add("outside_jiangmen", "cannot be combined with county");
    }
    let employer = optional_text(&req.employer, "employer", MAX_ORGANISATION_CHARS, &mut v);
    let employer =
        (!employer.is_empty()).then(|| CreditCode::parse(&employer).map(|c| c.to_string()).unwrap_or(employer));
    let (term_end_from, term_end_to) = match &req.term_end {
        Some(range) => {
            let from = optional_date(range.start.as_ref(), "term_end.start", &mut v);
            let to = optional_date(range.end.as_ref(), "term_end.end", &mut v);
            if let (Some(f), Some(t)) = (from, to)
                && f > t
            {
                v.add("term_end", "start must not be after end");
            }
            (from, to)
        }
        None => (None, None),
    };
    let name_contains = optional_text(&req.name_contains, "name_contains", MAX_NAME_CHARS, &mut v);
    let identity = req
        .identity
        .as_ref()
        .filter(|d| **d != common::IdentityDocument::default())
        .and_then(|d| identity_document(Some(d), "identity", today, &mut v));
    let kind = (req.kind != 0).then(|| {
        required_coded(
            req.kind,
            "kind",
            "INDIVIDUAL or UNIT_REPRESENTATIVE",
            "EXPERT_KIND_",
            |p: common::ExpertKind| p.as_str_name(),
            ExpertKind::from_code,
            &mut v,
        )
    });
    v.check()?;
    let filter = ExpertFilter {
        status: status.flatten(),
        category: category.flatten(),
        specialty_prefix,
        county,
        outside_jiangmen: req.outside_jiangmen,
        employer,
        term_end_from,
        term_end_to,
        name_contains: (!name_contains.is_empty()).then_some(name_contains),
        identity_index: None,
        kind: kind.flatten(),
    };
    Ok(ExpertListing { filter, identity, page })
}

pub fn changes_listing(req: &pb::ListExpertChangesRequest) -> Result<(ExpertId, Page), Status> {
    let mut v = FieldViolations::new();
    let page = Page::parse(req.page.as_ref(), "page", |t| ChangeId::parse(t).is_some(), &mut v);
    let id = ExpertId::parse(req.expert_id.trim());
    if id.is_none() {
        v.add("expert_id", "is not an expert id");
    }
    v.check()?;
    Ok((id.expect("checked above"), page))
}

/// A confirmation for this year or the last (a paper confirmation may arrive in January).
/// Staff enter it with `on_behalf` (D16); an expert confirming for themself sends none.
pub fn confirmation(
    req: &pb::ConfirmExpertDataRequest,
    now: DateTime<Utc>,
    today: NaiveDate,
    by_the_expert: bool,
) -> Result<Confirmation, Status> {
    let mut v = FieldViolations::new();
    let expert_id = ExpertId::parse(req.expert_id.trim());
    if expert_id.is_none() {
        v.add("expert_id", "is not an expert id");
    }
    let this_year = chrono::Datelike::year(&today);
    if !(this_year - 1..=this_year).contains(&req.year) {
        v.add("year", format!("must be {this_year} or {}", this_year - 1));
    }
    let note = long_text(&req.note, "note", MAX_NOTE_CHARS, false, &mut v);
    let on_behalf = on_behalf(req.on_behalf.as_ref(), "on_behalf", now, &mut v);
    match (by_the_expert, &on_behalf) {
        (true, Some(_)) => v.add("on_behalf", "is for staff entering a confirmation they received; leave it empty"),
        (false, None) => v.add("on_behalf", "is required: say how the expert's confirmation reached the bureau (D16)"),
        _ => {}
    }
    v.check()?;
    Ok(Confirmation { expert_id: expert_id.expect("checked above"), year: req.year, note, on_behalf })
}

pub fn civil_servant_entry(
    req: &pb::RecordCivilServantStatusRequest,
    now: DateTime<Utc>,
) -> Result<NewCivilServantEntry, Status> {
    let mut v = FieldViolations::new();
    let expert_id = ExpertId::parse(req.expert_id.trim());
    if expert_id.is_none() {
        v.add("expert_id", "is not an expert id");
    }
    let status = civil_servant_status(req.status, "status", &mut v);
    let valid_from = required_date(req.valid_from.as_ref(), "valid_from", &mut v);
    let evidence = evidence(req.evidence.as_ref(), "evidence", true, &mut v);
    let on_behalf = on_behalf(req.on_behalf.as_ref(), "on_behalf", now, &mut v);
    v.check()?;
    Ok(NewCivilServantEntry {
        expert_id: expert_id.expect("checked above"),
        status: status.expect("checked above"),
        valid_from: valid_from.expect("checked above"),
        evidence,
        on_behalf,
    })
}

pub fn civil_servant_query(req: &pb::GetCivilServantStatusRequest) -> Result<(ExpertId, NaiveDate), Status> {
    let mut v = FieldViolations::new();
    let expert_id = ExpertId::parse(req.expert_id.trim());
    if expert_id.is_none() {
        v.add("expert_id", "is not an expert id");
    }
    let date = required_date(req.date.as_ref(), "date", &mut v);
    v.check()?;
    Ok((expert_id.expect("checked above"), date.expect("checked above")))
}

pub fn payee_query(req: &pb::GetPayeeRequest) -> Result<(ExpertId, String), Status> {
    let mut v = FieldViolations::new();
    let expert_id = ExpertId::parse(req.expert_id.trim());
    if expert_id.is_none() {
        v.add("expert_id", "is not an expert id");
    }
    let purpose = optional_text(&req.purpose, "purpose", MAX_PURPOSE_CHARS, &mut v);
    v.check()?;
    Ok((expert_id.expect("checked above"), purpose))
}

// ------------------------------------------------------------------------------------------
// domain -> proto
// ------------------------------------------------------------------------------------------

pub fn expert_to_proto(e: &Expert, visibility: Visibility, today: NaiveDate) -> pb::Expert {
    let history = periods(&e.civil_servant);
    let civil_servant_status = period_on(&history, today).map_or(0, |p| {
        contract_value("CIVIL_SERVANT_STATUS_", p.status.code(), common::CivilServantStatus::from_str_name)
    });
    pb::Expert {
        id: e.id.to_string(),
        profile: Some(profile_to_proto(&e.profile, visibility)),
        status: contract_value("EXPERT_STATUS_", e.status.code(), pb::ExpertStatus::from_str_name),
        appointment: e.appointment.as_ref().map(|a| super::appointments::appointment_to_proto(a, today)),
        civil_servant_status,
        trained: e.trained,
        last_confirmed_year: e.last_confirmed_year,
        application_id: e.application_id.clone(),
        revision: e.revision,
        create_time: Some(timestamp(e.created_at)),
        update_time: Some(timestamp(e.updated_at)),
    }
}

pub fn profile_to_proto(p: &Profile, visibility: Visibility) -> pb::ExpertProfile {
    pb::ExpertProfile {
        kind: contract_value("EXPERT_KIND_", p.kind.code(), common::ExpertKind::from_str_name),
        name: p.name.clone(),
        gender: p.gender.map_or(0, |g| contract_value("GENDER_", g.code(), common::Gender::from_str_name)),
        // With a masked number the birth date would give most of the number back (personal.rs).
        birth_date: p.birth_date.filter(|_| visibility == Visibility::Full).map(date),
        identity: Some(document_to_proto(&p.identity, visibility)),
        other_identities: p.other_identities.iter().map(|d| document_to_proto(d, visibility)).collect(),
        locality: Some(locality_to_proto(&p.locality)),
        contact: Some(contact_to_proto(&p.contact, visibility)),
        bank_account: p.bank_account.as_ref().map(|a| bank_account_to_proto(a, visibility)),
        employer: p.employer.as_ref().map(employer_to_proto),
        represented_unit: p.represented_unit.as_ref().map(organisation_to_proto),
        categories: p.categories.iter().map(category_to_proto).collect(),
        conditions: p.conditions.iter().map(condition_to_proto).collect(),
        specialties: p.specialties.iter().map(specialty_to_proto).collect(),
        professional_title: p.professional_title.clone(),
    }
}

pub fn document_to_proto(d: &IdentityDocument, visibility: Visibility) -> common::IdentityDocument {
    let masked = visibility == Visibility::Masked;
    common::IdentityDocument {
        r#type: contract_value("IDENTITY_DOCUMENT_TYPE_", d.kind.code(), common::IdentityDocumentType::from_str_name),
        number: if masked { mask_document(d.number()) } else { d.number().to_owned() },
        issuing_country: d.issuing_country.clone(),
        masked,
    }
}

pub fn contact_to_proto(c: &Contact, visibility: Visibility) -> common::ContactDetails {
    match visibility {
        Visibility::Full => common::ContactDetails {
            mobile: c.mobile.clone(),
            email: c.email.clone(),
            address: c.address.clone(),
            masked: false,
        },
        Visibility::Masked => common::ContactDetails {
            mobile: mask_mobile(&c.mobile),
            email: if c.email.is_empty() { String::new() } else { mask_email(&c.email) },
            // The postal address is withheld, not masked (common.proto).
            address: String::new(),
            masked: true,
        },
    }
}

pub fn bank_account_to_proto(a: &BankAccount, visibility: Visibility) -> common::BankAccount {
    let masked = visibility == Visibility::Masked;
    common::BankAccount {
        holder_name: a.holder_name.clone(),
        bank_name: a.bank_name.clone(),
        branch_name: a.branch_name.clone(),
        account_number: if masked { mask_account(&a.account_number) } else { a.account_number.clone() },
        masked,
    }
}

fn locality_to_proto(l: &Locality) -> common::Locality {
    use common::locality::Place;
    common::Locality {
        place: Some(match l {
            Locality::County(b) => Place::County(b.to_proto() as i32),
            Locality::Outside(place) => Place::OutsideJiangmen(place.clone()),
        }),
    }
}

pub(crate) fn organisation_to_proto(o: &Organisation) -> common::Organisation {
    common::Organisation {
        name: o.name.clone(),
        credit_code: o.credit_code.as_ref().map(ToString::to_string).unwrap_or_default(),
        institution_id: o.institution_id.as_ref().map(ToString::to_string).unwrap_or_default(),
    }
}

pub fn employer_to_proto(e: &Employer) -> common::Employer {
    common::Employer {
        organisation: Some(organisation_to_proto(&e.organisation)),
        post: e.post.clone(),
        since: e.since.map(date),
        employer_key: e.key(),
    }
}

pub fn evidence_to_proto(e: &Evidence) -> common::Evidence {
    common::Evidence {
        description: e.description.clone(),
        documents: e
            .documents
            .iter()
            .map(|d| common::DocumentRef {
                id: d.id.clone(),
                file_name: d.file_name.clone(),
                media_type: d.media_type.clone(),
                size_bytes: d.size_bytes,
                sha256: d.sha256.clone(),
            })
            .collect(),
    }
}

fn category_to_proto(h: &CategoryHolding) -> pb::CategoryHolding {
    pb::CategoryHolding {
        category: contract_value("EXPERT_CATEGORY_", h.category.code(), common::ExpertCategory::from_str_name),
        evidence: Some(evidence_to_proto(&h.evidence)),
        valid_until: h.valid_until.map(date),
        verified: h.verified,
        verified_by: h.verified_by.as_ref().map(Actor::to_proto),
        verified_date: h.verified_date.map(date),
        note: h.note.clone(),
    }
}

fn condition_to_proto(c: &ConditionRecord) -> pb::ConditionRecord {
    pb::ConditionRecord {
        condition: contract_value(
            "ELIGIBILITY_CONDITION_",
            c.condition.code(),
            common::EligibilityCondition::from_str_name,
        ),
        evidence: Some(evidence_to_proto(&c.evidence)),
        checked_date: c.checked_date.map(date),
        checked_by: c.checked_by.as_ref().map(Actor::to_proto),
        met: c.met,
        note: c.note.clone(),
    }
}

fn specialty_to_proto(s: &Specialty) -> common::Specialty {
    common::Specialty {
        // The name comes from the controlled list, which ListSpecialties will serve.
        code: Some(common::SpecialtyCode { code: s.code.as_str().to_owned(), name: String::new() }),
        level: s.level.map_or(0, |l| contract_value("SKILL_LEVEL_", l.code(), common::SkillLevel::from_str_name)),
        note: s.note.clone(),
    }
}

pub fn on_behalf_to_proto(o: &OnBehalf) -> common::OnBehalf {
    common::OnBehalf {
        channel: common::EntryChannel::from_str_name(&o.channel).map_or(0, |c| c as i32),
        received_time: Some(timestamp(o.received_at)),
        note: o.note.clone(),
    }
}

pub fn change_to_proto(c: &ExpertChange) -> pb::ExpertChange {
    pb::ExpertChange {
        id: c.id.to_string(),
        expert_id: c.expert_id.to_string(),
        time: Some(timestamp(c.at)),
        actor: Some(c.actor.to_proto()),
        reason: c.reason.clone(),
        on_behalf: c.on_behalf.as_ref().map(on_behalf_to_proto),
        changes: c
            .changes
            .iter()
            .map(|f| pb::FieldChange { path: f.path.clone(), before: f.before.clone(), after: f.after.clone() })
            .collect(),
    }
}

pub fn period_to_proto(p: &CivilServantPeriod) -> pb::CivilServantPeriod {
    pb::CivilServantPeriod {
        status: contract_value("CIVIL_SERVANT_STATUS_", p.status.code(), common::CivilServantStatus::from_str_name),
        valid_from: p.valid_from.map(date),
        valid_to: p.valid_to.map(date),
        evidence: Some(evidence_to_proto(&p.evidence)),
        recorded_by: Some(p.recorded_by.to_proto()),
        record_time: Some(timestamp(p.recorded_at)),
    }
}

pub fn status_to_proto(s: CivilServantStatus) -> i32 {
    contract_value("CIVIL_SERVANT_STATUS_", s.code(), common::CivilServantStatus::from_str_name)
}

pub fn payee_to_proto(e: &Expert, visibility: Visibility) -> pb::GetPayeeResponse {
    let p = &e.profile;
    pb::GetPayeeResponse {
        expert_id: e.id.to_string(),
        name: p.name.clone(),
        identity: Some(document_to_proto(&p.identity, visibility)),
        bank_account: p.bank_account.as_ref().map(|a| bank_account_to_proto(a, visibility)),
        employer: p.employer.as_ref().map(employer_to_proto),
        contact: Some(contact_to_proto(&p.contact, visibility)),
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::StatusExt;

    use super::*;

    /// Finance's purpose for a bank payment file or a withholding return with a UUID request id is
    /// 101 or 102 characters; it was refused at 100, so every such export answered UNAVAILABLE.
    #[test]
    fn a_payee_purpose_holds_finances_export_id_kind_and_longest_request_id() {
        let query = |purpose: String| {
            payee_query(&pb::GetPayeeRequest { expert_id: "exp_01a2296a9777776aa13eb88ef1215d31".into(), purpose })
        };
        let export = "exp_01a2296a9777776aa13eb88ef1215d32";
        for kind in ["BANK_PAYMENT_FILE", "WITHHOLDING_RETURN", "YEARLY_STATEMENT"] {
            for request_id in ["9b2f7c1e-4d0a-4c55-8f3e-2a6b1c0d9e8f".to_owned(), "r".repeat(128)] {
                let purpose = format!("{export} {kind} (request {request_id})");
                assert_eq!(query(purpose.clone()).expect("accepted").1, purpose);
            }
        }
        let too_long = query("x".repeat(MAX_PURPOSE_CHARS + 1)).unwrap_err();
        assert_eq!(too_long.code(), tonic::Code::InvalidArgument);
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 2).unwrap()
    }

    fn evidence(text: &str) -> Option<common::Evidence> {
        Some(common::Evidence { description: text.into(), documents: vec![] })
    }

    pub fn valid() -> pb::CreateExpertRequest {
        pb::CreateExpertRequest {
            request_id: "r1".into(),
            profile: Some(pb::ExpertProfile {
                kind: common::ExpertKind::Individual as i32,
                name: "李明".into(),
                gender: common::Gender::Male as i32,
                birth_date: None,
                identity: Some(common::IdentityDocument {
                    r#type: common::IdentityDocumentType::ResidentIdCard as i32,
                    number: "11010519491231002x".into(),
                    issuing_country: String::new(),
                    masked: false,
                }),
                other_identities: vec![],
                locality: Some(common::Locality {
                    place: Some(common::locality::Place::County(common::BureauCode::Xinhui as i32)),
                }),
                contact: Some(common::ContactDetails {
                    mobile: "138 1234 5678".into(),
                    email: "li.ming@example.com".into(),
                    address: "江门市新会区".into(),
                    masked: false,
                }),
                bank_account: Some(common::BankAccount {
                    holder_name: "李明".into(),
                    bank_name: "中国工商银行".into(),
                    branch_name: String::new(),
                    account_number: "6222021234567890123".into(),
                    masked: false,
                }),
                employer: Some(common::Employer {
                    organisation: Some(common::Organisation {
                        name: "江门市示例职业培训学校".into(),
                        credit_code: "91350100M000100Y43".into(),
                        institution_id: String::new(),
                    }),
                    post: "教师".into(),
                    since: None,
                    employer_key: String::new(),
                }),
                represented_unit: None,
                categories: vec![pb::CategoryHolding {
                    category: common::ExpertCategory::Technician as i32,
                    evidence: evidence("技师证书"),
                    ..Default::default()
                }],
                conditions: vec![],
                specialties: vec![common::Specialty {
                    code: Some(common::SpecialtyCode { code: "4-07-05-01".into(), name: String::new() }),
                    level: common::SkillLevel::Technician as i32,
                    note: String::new(),
                }],
                professional_title: String::new(),
            }),
            civil_servant_status: common::CivilServantStatus::None as i32,
            civil_servant_since: None,
            existing_appointment: None,
        }
    }

    fn violated_fields(status: &Status) -> Vec<String> {
        status.get_error_details().bad_request().unwrap().field_violations.iter().map(|f| f.field.clone()).collect()
    }

    #[test]
    fn a_valid_request_converts_and_normalises() {
        let new = new_expert(&valid(), today()).unwrap();
        let p = &new.profile;
        assert_eq!(p.identity.number(), "11010519491231002X");
        assert_eq!(p.birth_date, NaiveDate::from_ymd_opt(1949, 12, 31), "taken from the document");
        assert_eq!(p.contact.mobile, "13812345678");
        assert_eq!(p.employer.as_ref().unwrap().key(), "91350100M000100Y43");
        assert_eq!(new.civil_servant_status, CivilServantStatus::None);
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut req = valid();
        let p = req.profile.as_mut().unwrap();
        p.kind = 0;
        p.name = " ".into();
        p.identity.as_mut().unwrap().number = "110105194912310021".into();
        p.locality = Some(common::Locality {
            place: Some(common::locality::Place::County(common::BureauCode::JiangmenCity as i32)),
        });
        p.contact.as_mut().unwrap().mobile = "2381234567".into();
        p.contact.as_mut().unwrap().email = "nobody".into();
        p.bank_account.as_mut().unwrap().account_number = "62-22".into();
        p.employer.as_mut().unwrap().organisation.as_mut().unwrap().credit_code = "91350100M000100Y44".into();
        p.categories.push(pb::CategoryHolding {
            category: common::ExpertCategory::Technician as i32,
            evidence: None,
            ..Default::default()
        });
        p.specialties[0].code.as_mut().unwrap().code = "9-99".into();
        req.civil_servant_status = 0;
        assert_eq!(
            violated_fields(&new_expert(&req, today()).unwrap_err()),
            [
                "profile.kind",
                "profile.name",
                "profile.identity.number",
                "profile.locality.county",
                "profile.contact.mobile",
                "profile.contact.email",
                "profile.bank_account.account_number",
                "profile.employer.organisation.credit_code",
                "profile.categories[1].category",
                "profile.categories[1].evidence",
                "profile.specialties[0].code",
                "civil_servant_status",
            ]
        );
    }

    #[test]
    fn a_passport_needs_its_issuing_country() {
        let mut req = valid();
        let doc = req.profile.as_mut().unwrap().identity.as_mut().unwrap();
        doc.r#type = common::IdentityDocumentType::Passport as i32;
        doc.number = "E12345678".into();
        assert_eq!(violated_fields(&new_expert(&req, today()).unwrap_err()), ["profile.identity.issuing_country"]);
        req.profile.as_mut().unwrap().identity.as_mut().unwrap().issuing_country = "can".into();
        let new = new_expert(&req, today()).unwrap();
        assert_eq!(new.profile.identity.issuing_country, "CAN");
        assert_eq!(new.profile.birth_date, None, "a passport number carries no birth date");
    }

    #[test]
    fn cross_field_rules_are_named_too() {
        let mut req = valid();
        let p = req.profile.as_mut().unwrap();
        p.kind = common::ExpertKind::UnitRepresentative as i32;
        p.bank_account.as_mut().unwrap().holder_name = "王芳".into();
        assert_eq!(
            violated_fields(&new_expert(&req, today()).unwrap_err()),
            ["profile.represented_unit", "profile.bank_account.holder_name"]
        );
    }

    #[test]
    fn category_ten_needs_a_justification_when_verified() {
        let mut req = valid();
        req.profile.as_mut().unwrap().categories = vec![pb::CategoryHolding {
            category: common::ExpertCategory::OutstandingTechnicalStaff as i32,
            evidence: evidence("专利证书"),
            verified: true,
            ..Default::default()
        }];
        assert_eq!(violated_fields(&new_expert(&req, today()).unwrap_err()), ["profile.categories[0].note"]);
    }

    #[test]
    fn a_condition_is_listed_once_and_found_met_only_with_evidence() {
        let mut req = valid();
        req.profile.as_mut().unwrap().conditions = vec![
            pb::ConditionRecord {
                condition: common::EligibilityCondition::CleanRecord as i32,
                evidence: evidence("无犯罪记录证明 2026-01-05"),
                met: true,
                ..Default::default()
            },
            pb::ConditionRecord {
                condition: common::EligibilityCondition::CleanRecord as i32,
                met: true,
                ..Default::default()
            },
            pb::ConditionRecord { condition: 0, ..Default::default() },
        ];
        assert_eq!(
            violated_fields(&new_expert(&req, today()).unwrap_err()),
            ["profile.conditions[1].condition", "profile.conditions[1].evidence", "profile.conditions[2].condition"]
        );
    }

    #[test]
    fn a_confirmation_is_for_this_year_or_the_last_and_staff_say_how_it_arrived() {
        let confirm = |year: i32| pb::ConfirmExpertDataRequest {
            request_id: "c".into(),
            expert_id: "exp_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f".into(),
            year,
            note: String::new(),
            on_behalf: None,
        };
        let now = Utc::now();
        assert!(confirmation(&confirm(2026), now, today(), true).is_ok());
        assert!(confirmation(&confirm(2025), now, today(), true).is_ok(), "a January confirmation of last year");
        for year in [2024, 2027] {
            assert_eq!(violated_fields(&confirmation(&confirm(year), now, today(), true).unwrap_err()), ["year"]);
        }
        assert_eq!(violated_fields(&confirmation(&confirm(2026), now, today(), false).unwrap_err()), ["on_behalf"]);
    }

    #[test]
    fn an_update_mask_names_whole_fields() {
        let req = pb::UpdateExpertRequest {
            request_id: "u".into(),
            id: "exp_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f".into(),
            profile: valid().profile,
            update_mask: Some(prost_types::FieldMask { paths: vec!["contact.mobile".into(), "salary".into()] }),
            expected_revision: 0,
            reason: "电话告知".into(),
            on_behalf: None,
        };
        assert_eq!(
            violated_fields(&expert_update(&req, Utc::now(), today()).unwrap_err()),
            ["update_mask.paths[0]", "update_mask.paths[1]"]
        );
        let ok = pb::UpdateExpertRequest {
            update_mask: Some(prost_types::FieldMask { paths: vec!["contact".into(), "profile.employer".into()] }),
            ..req
        };
        let update = expert_update(&ok, Utc::now(), today()).unwrap();
        assert!(update.patch.contact.is_some() && update.patch.employer.is_some());
        assert!(update.patch.name.is_none(), "fields outside the mask are not read");
    }

    #[test]
    fn every_domain_code_has_a_contract_value() {
        for c in Category::ALL {
            assert_ne!(contract_value("EXPERT_CATEGORY_", c.code(), common::ExpertCategory::from_str_name), 0);
        }
        for c in Condition::ALL {
            assert_ne!(
                contract_value("ELIGIBILITY_CONDITION_", c.code(), common::EligibilityCondition::from_str_name),
                0
            );
        }
        for s in ExpertStatus::ALL {
            assert_ne!(contract_value("EXPERT_STATUS_", s.code(), pb::ExpertStatus::from_str_name), 0);
        }
        for s in CivilServantStatus::ALL {
            assert_ne!(status_to_proto(*s), 0);
        }
        for l in SkillLevel::ALL {
            assert_ne!(contract_value("SKILL_LEVEL_", l.code(), common::SkillLevel::from_str_name), 0);
        }
        for t in DocumentType::ALL {
            assert_ne!(
                contract_value("IDENTITY_DOCUMENT_TYPE_", t.code(), common::IdentityDocumentType::from_str_name),
                0
            );
        }
    }

    #[test]
    fn masked_responses_show_no_plain_personal_data() {
        let new = new_expert(&valid(), today()).unwrap();
        let p = profile_to_proto(&new.profile, Visibility::Masked);
        assert_eq!(p.identity.as_ref().unwrap().number, "**************002X");
        assert!(p.identity.as_ref().unwrap().masked);
        let c = p.contact.unwrap();
        assert_eq!(
            (c.mobile.as_str(), c.email.as_str(), c.address.as_str(), c.masked),
            ("138****5678", "l***@example.com", "", true)
        );
        let a = p.bank_account.unwrap();
        assert_eq!((a.account_number.as_str(), a.masked), ("***************0123", true));
        let full = profile_to_proto(&new.profile, Visibility::Full);
        assert_eq!(full.contact.unwrap().address, "江门市新会区");
    }
}
