//! 社会监督专家 — experts of articles 2, 5, 6 and 14 (D19): who they are, what qualifies them,
//! where they are based, how to reach and pay them, and the history of changes to their data.
//!
//! Personal data (identity numbers, mobile, e-mail, postal address, bank account) is held here
//! in plain form only in memory; the store encrypts it, and every view that leaves the service
//! for a caller who may not see it, and every audit or change record, is masked
//! ([`Visibility`], [`fields`]).

use std::{collections::BTreeMap, fmt};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use supervision_kit::{
    Bureau, SpecialtyCode,
    auth::Actor,
    credit_code::CreditCode,
    identity::IdentityDocument,
    personal::{mask_account, mask_document, mask_email, mask_mobile},
    vocab::OnBehalf,
};

use super::{CivilServantEntry, InstitutionId};

/// The registry's opaque id of an expert: `exp_` and 32 lower-case hex digits of a UUIDv7. Draws
/// run over it (D18), so it carries nothing personal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExpertId(String);

impl ExpertId {
    const PREFIX: &'static str = "exp_";

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

impl fmt::Display for ExpertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of one change of an expert's data: `chg_` and a UUIDv7, so ids sort by time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChangeId(String);

impl ChangeId {
    const PREFIX: &'static str = "chg_";

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

impl fmt::Display for ChangeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

coded_enum! {
    /// An individual or a unit representative (单位代表, article 2, D19).
    pub enum ExpertKind {
        Individual = "INDIVIDUAL",
        UnitRepresentative = "UNIT_REPRESENTATIVE",
    }
}

coded_enum! {
    /// 性别, as on the identity document.
    pub enum Gender {
        Male = "MALE",
        Female = "FEMALE",
    }
}

coded_enum! {
    /// An expert's standing in the pool (DOMAIN.md 6.3). A new record is `NotAppointed` until an
    /// appointment is recorded.
    pub enum ExpertStatus {
        NotAppointed = "NOT_APPOINTED",
        Active = "ACTIVE",
        Suspended = "SUSPENDED",
        Retired = "RETIRED",
        Terminated = "TERMINATED",
        Lapsed = "LAPSED",
    }
}

coded_enum! {
    /// 征集、任用范围 — the eleven categories of article 5, in item order.
    pub enum Category {
        SeniorProfessionalTitle = "SENIOR_PROFESSIONAL_TITLE",
        Technician = "TECHNICIAN",
        HighSkillLeadingTalent = "HIGH_SKILL_LEADING_TALENT",
        AssessorOrQualitySupervisor = "ASSESSOR_OR_QUALITY_SUPERVISOR",
        CourseStandardDeveloper = "COURSE_STANDARD_DEVELOPER",
        IndustryAssociationLeader = "INDUSTRY_ASSOCIATION_LEADER",
        Educator = "EDUCATOR",
        TrainingOrganisationRepresentative = "TRAINING_ORGANISATION_REPRESENTATIVE",
        WorkSafetyInspector = "WORK_SAFETY_INSPECTOR",
        OutstandingTechnicalStaff = "OUTSTANDING_TECHNICAL_STAFF",
        DeputyOrCppccMember = "DEPUTY_OR_CPPCC_MEMBER",
    }
}

impl Category {
    /// Whether a verification must carry the reviewer's justification: category (十), the most
    /// discretionary one (DOMAIN.md 8.1).
    pub fn needs_justification(self) -> bool {
        self == Self::OutstandingTechnicalStaff
    }
}

coded_enum! {
    /// 任用条件 — the four conditions of article 6, all required (同时具备), in item order.
    pub enum Condition {
        Commitment = "COMMITMENT",
        Integrity = "INTEGRITY",
        Competence = "COMPETENCE",
        CleanRecord = "CLEAN_RECORD",
    }
}

coded_enum! {
    /// 技能等级, where a specialty has one.
    pub enum SkillLevel {
        Elementary = "ELEMENTARY",
        Intermediate = "INTERMEDIATE",
        Advanced = "ADVANCED",
        Technician = "TECHNICIAN",
        SeniorTechnician = "SENIOR_TECHNICIAN",
        PrincipalTechnician = "PRINCIPAL_TECHNICIAN",
    }
}

coded_enum! {
    /// The paths of an expert's profile an update may name; repeated and nested fields are
    /// replaced whole.
    pub enum ProfilePath {
        Kind = "kind",
        Name = "name",
        Gender = "gender",
        BirthDate = "birth_date",
        Identity = "identity",
        OtherIdentities = "other_identities",
        Locality = "locality",
        Contact = "contact",
        BankAccount = "bank_account",
        Employer = "employer",
        RepresentedUnit = "represented_unit",
        Categories = "categories",
        Conditions = "conditions",
        Specialties = "specialties",
        ProfessionalTitle = "professional_title",
    }
}

/// A stored file an evidence item points to (`doc_`, `mat_` or `att_`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentRef {
    pub id: String,
    pub file_name: String,
    pub media_type: String,
    pub size_bytes: i64,
    pub sha256: String,
}

/// What supports a claim: a description and files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub description: String,
    pub documents: Vec<DocumentRef>,
}

impl Evidence {
    pub fn is_empty(&self) -> bool {
        self.description.is_empty() && self.documents.is_empty()
    }
}

/// One article 5 category an expert holds (D19: several, each with evidence and an optional
/// expiry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryHolding {
    pub category: Category,
    pub evidence: Evidence,
    pub valid_until: Option<NaiveDate>,
    pub verified: bool,
    /// Set by the registry: the staff user who marked it verified.
    pub verified_by: Option<Actor>,
    pub verified_date: Option<NaiveDate>,
    pub note: String,
}

/// The state of one article 6 condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionRecord {
    pub condition: Condition,
    pub evidence: Evidence,
    pub checked_date: Option<NaiveDate>,
    /// Set by the registry: the staff user who recorded the check.
    pub checked_by: Option<Actor>,
    pub met: bool,
    pub note: String,
}

/// An occupation (or group) of the national classification, with the holder's level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Specialty {
    pub code: SpecialtyCode,
    pub level: Option<SkillLevel>,
    pub note: String,
}

/// Where an expert is based (D19): a county of Jiangmen or somewhere outside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locality {
    County(Bureau),
    Outside(String),
}

pub use supervision_kit::contact::{BankAccount, Contact, parse_account_number, parse_email, parse_mobile};

/// An employer or a represented unit, registered here or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organisation {
    pub name: String,
    pub credit_code: Option<CreditCode>,
    pub institution_id: Option<InstitutionId>,
}

impl Organisation {
    /// The key organisations are compared by (D14's same-employer rule, the represented unit of
    /// D19): the credit code when known, otherwise the name without spaces, full-width forms
    /// folded to ASCII and ASCII letters lower-cased, so "江门市（示例）有限公司 " and
    /// "江门市(示例)有限公司" are one employer.
    pub fn key(&self) -> String {
        match &self.credit_code {
            Some(code) => code.to_string(),
            None => normalise_name(&self.name),
        }
    }
}

fn normalise_name(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match u32::from(c) {
            // Full-width ASCII variants (U+FF01..U+FF5E) sit 0xFEE0 above their ASCII forms.
            cp @ 0xFF01..=0xFF5E => char::from_u32(cp - 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The expert's current employer (工作单位).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Employer {
    pub organisation: Organisation,
    pub post: String,
    pub since: Option<NaiveDate>,
}

impl Employer {
    /// The same-employer key of D14.
    pub fn key(&self) -> String {
        self.organisation.key()
    }
}

/// The editable data of an expert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub kind: ExpertKind,
    pub name: String,
    pub gender: Option<Gender>,
    pub birth_date: Option<NaiveDate>,
    /// The primary document; experts are unique by its blind index (and by every other one).
    pub identity: IdentityDocument,
    pub other_identities: Vec<IdentityDocument>,
    pub locality: Locality,
    pub contact: Contact,
    pub bank_account: Option<BankAccount>,
    pub employer: Option<Employer>,
    /// Only for a unit representative, and then required (D19).
    pub represented_unit: Option<Organisation>,
    pub categories: Vec<CategoryHolding>,
    pub conditions: Vec<ConditionRecord>,
    pub specialties: Vec<Specialty>,
    pub professional_title: String,
}

impl Profile {
    /// Every document the expert holds, the primary first.
    pub fn documents(&self) -> impl Iterator<Item = &IdentityDocument> {
        std::iter::once(&self.identity).chain(&self.other_identities)
    }

    /// The rules that tie fields together, as (field path, problem) pairs; empty when the
    /// profile is consistent. Each field's own format is checked where it is read.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        match (self.kind, &self.represented_unit) {
            (ExpertKind::UnitRepresentative, None) => problems.push((
                "profile.represented_unit".to_owned(),
                "a unit representative names the unit represented (D19)".to_owned(),
            )),
            (ExpertKind::Individual, Some(_)) => problems.push((
                "profile.represented_unit".to_owned(),
                "only a unit representative represents a unit; set kind to UNIT_REPRESENTATIVE".to_owned(),
            )),
            _ => {}
        }
        if let (Some(birth), Some(on_document)) = (self.birth_date, self.identity.birth_date())
            && birth != on_document
        {
            problems.push((
                "profile.birth_date".to_owned(),
                format!("does not match the birth date the identity document carries ({on_document})"),
            ));
        }
        for (i, doc) in self.other_identities.iter().enumerate() {
            let repeats = self.documents().take(i + 1).any(|earlier| earlier.index_input() == doc.index_input());
            if repeats {
                problems.push((format!("profile.other_identities[{i}]"), "repeats another document".to_owned()));
            }
        }
        if let Some(account) = &self.bank_account
            && normalise_name(&account.holder_name) != normalise_name(&self.name)
        {
            problems.push((
                "profile.bank_account.holder_name".to_owned(),
                "must be the expert's own name: fees are paid to the person (DOMAIN.md 10.9)".to_owned(),
            ));
        }
        problems
    }
}

/// Parts of a profile: all of them for a new expert, those an update's mask names otherwise.
/// For optional parts, `Some(None)` clears the part.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfilePatch {
    pub kind: Option<ExpertKind>,
    pub name: Option<String>,
    pub gender: Option<Option<Gender>>,
    pub birth_date: Option<Option<NaiveDate>>,
    pub identity: Option<IdentityDocument>,
    pub other_identities: Option<Vec<IdentityDocument>>,
    pub locality: Option<Locality>,
    pub contact: Option<Contact>,
    pub bank_account: Option<Option<BankAccount>>,
    pub employer: Option<Option<Employer>>,
    pub represented_unit: Option<Option<Organisation>>,
    pub categories: Option<Vec<CategoryHolding>>,
    pub conditions: Option<Vec<ConditionRecord>>,
    pub specialties: Option<Vec<Specialty>>,
    pub professional_title: Option<String>,
}

impl ProfilePatch {
    /// The whole profile, when every required part is present (it is after a clean conversion of
    /// a creation request). A birth date not given is the one the document carries.
    pub fn into_profile(self) -> Option<Profile> {
        let identity = self.identity?;
        let birth_date = self.birth_date.flatten().or_else(|| identity.birth_date());
        Some(Profile {
            kind: self.kind?,
            name: self.name?,
            gender: self.gender.flatten(),
            birth_date,
            identity,
            other_identities: self.other_identities.unwrap_or_default(),
            locality: self.locality?,
            contact: self.contact?,
            bank_account: self.bank_account.flatten(),
            employer: self.employer.flatten(),
            represented_unit: self.represented_unit.flatten(),
            categories: self.categories.unwrap_or_default(),
            conditions: self.conditions.unwrap_or_default(),
            specialties: self.specialties.unwrap_or_default(),
            professional_title: self.professional_title.unwrap_or_default(),
        })
    }

    /// `profile` with the parts this patch holds replaced. A new identity document that carries
    /// a birth date brings it along unless the patch sets the birth date too.
    pub fn apply_to(self, profile: &Profile) -> Profile {
        let mut p = profile.clone();
        if let Some(identity) = self.identity {
            if self.birth_date.is_none()
                && let Some(birth) = identity.birth_date()
            {
                p.birth_date = Some(birth);
            }
            p.identity = identity;
        }
        if let Some(x) = self.kind {
            p.kind = x;
        }
        if let Some(x) = self.name {
            p.name = x;
        }
        if let Some(x) = self.gender {
            p.gender = x;
        }
        if let Some(x) = self.birth_date {
            p.birth_date = x.or_else(|| p.identity.birth_date());
        }
        if let Some(x) = self.other_identities {
            p.other_identities = x;
        }
        if let Some(x) = self.locality {
            p.locality = x;
        }
        if let Some(x) = self.contact {
            p.contact = x;
        }
        if let Some(x) = self.bank_account {
            p.bank_account = x;
        }
        if let Some(x) = self.employer {
            p.employer = x;
        }
        if let Some(x) = self.represented_unit {
            p.represented_unit = x;
        }
        if let Some(x) = self.categories {
            p.categories = x;
        }
        if let Some(x) = self.conditions {
            p.conditions = x;
        }
        if let Some(x) = self.specialties {
            p.specialties = x;
        }
        if let Some(x) = self.professional_title {
            p.professional_title = x;
        }
        p
    }
}

/// Which form of personal data a caller gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Plain values: CITY_ADMIN, CITY_REVIEWER, AUDITOR and the expert themself (common.proto).
    Full,
    /// Masked numbers, no postal address: everyone else.
    Masked,
}

/// An expert as the registry holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expert {
    pub id: ExpertId,
    pub profile: Profile,
    pub status: ExpertStatus,
    /// Every civil-servant entry ever recorded, in recording order.
    pub civil_servant: Vec<CivilServantEntry>,
    pub trained: bool,
    /// 0 when the expert never confirmed their data (D21).
    pub last_confirmed_year: i32,
    /// The recruitment application behind the first appointment; empty for a direct entry.
    pub application_id: String,
    /// The last day of the current term; `None` until appointments are recorded.
    pub current_term_end: Option<NaiveDate>,
    /// The current term, or the last one when none is current; `None` if never appointed.
    pub appointment: Option<super::Appointment>,
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One field's change, with personal values masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub path: String,
    pub before: String,
    pub after: String,
}

/// One change of an expert's data: who, when, why, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpertChange {
    pub id: ChangeId,
    pub expert_id: ExpertId,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub reason: String,
    pub on_behalf: Option<OnBehalf>,
    pub changes: Vec<FieldChange>,
}

/// Filters of a listing; `None` (or `false`) matches everything, set filters must all match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpertFilter {
    pub status: Option<ExpertStatus>,
    pub category: Option<Category>,
    /// A specialty code the expert's specialty must equal or fall under.
    pub specialty_prefix: Option<String>,
    pub county: Option<Bureau>,
    pub outside_jiangmen: bool,
    /// A credit code the employer must have, or text its name must contain.
    pub employer: Option<String>,
    pub term_end_from: Option<NaiveDate>,
    pub term_end_to: Option<NaiveDate>,
    pub name_contains: Option<String>,
    /// The blind index of an identity document.
    pub identity_index: Option<String>,
    pub kind: Option<ExpertKind>,
}

/// A document as a change record or an audit entry shows it.
fn document_view(doc: &IdentityDocument, masked: bool) -> serde_json::Value {
    let number = if masked { mask_document(doc.number()) } else { doc.number().to_owned() };
    serde_json::json!({ "type": doc.kind.code(), "number": number, "issuing_country": doc.issuing_country })
}

fn actor_view(actor: Option<&Actor>) -> serde_json::Value {
    actor.map_or(serde_json::Value::Null, |a| serde_json::json!({ "subject": a.subject, "role": a.role }))
}

fn date_text(date: Option<NaiveDate>) -> String {
    date.map(|d| d.to_string()).unwrap_or_default()
}

/// The profile as leaf paths (`contact.mobile`, `identity.number`, ...) and their values as text;
/// repeated fields are one path each, as JSON. With `masked`, personal data is masked as in
/// responses and the postal address shows only whether there is one.
pub fn fields(p: &Profile, masked: bool) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    let mut put = |path: &str, value: String| {
        f.insert(path.to_owned(), value);
    };
    put("kind", p.kind.code().to_owned());
    put("name", p.name.clone());
    put("gender", p.gender.map(|g| g.code().to_owned()).unwrap_or_default());
    // A masked record keeps only the birth year: with the full date, a masked number is
    // recoverable (personal.rs).
    put(
        "birth_date",
        if masked {
            p.birth_date.map(|d| d.format("%Y").to_string()).unwrap_or_default()
        } else {
            date_text(p.birth_date)
        },
    );
    put("identity.type", p.identity.kind.code().to_owned());
    put("identity.number", if masked { mask_document(p.identity.number()) } else { p.identity.number().to_owned() });
    put("identity.issuing_country", p.identity.issuing_country.clone());
    let others: Vec<_> = p.other_identities.iter().map(|d| document_view(d, masked)).collect();
    put("other_identities", serde_json::Value::from(others).to_string());
    let (county, outside) = match &p.locality {
        Locality::County(b) => (b.division_code().to_owned(), String::new()),
        Locality::Outside(place) => (String::new(), place.clone()),
    };
    put("locality.county", county);
    put("locality.outside_jiangmen", outside);
    let c = &p.contact;
    let (mobile, email, address) = if masked {
        let email = if c.email.is_empty() { String::new() } else { mask_email(&c.email) };
        let address = if c.address.is_empty() { String::new() } else { "***".to_owned() };
        (mask_mobile(&c.mobile), email, address)
    } else {
        (c.mobile.clone(), c.email.clone(), c.address.clone())
    };
    put("contact.mobile", mobile);
    put("contact.email", email);
    put("contact.address", address);
    let account = p.bank_account.as_ref();
    put("bank_account.holder_name", account.map(|a| a.holder_name.clone()).unwrap_or_default());
    put("bank_account.bank_name", account.map(|a| a.bank_name.clone()).unwrap_or_default());
    put("bank_account.branch_name", account.map(|a| a.branch_name.clone()).unwrap_or_default());
    put(
        "bank_account.account_number",
        account
            .map(|a| if masked { mask_account(&a.account_number) } else { a.account_number.clone() })
            .unwrap_or_default(),
    );
    let organisation = |prefix: &str, org: Option<&Organisation>, put: &mut dyn FnMut(&str, String)| {
        put(&format!("{prefix}.name"), org.map(|o| o.name.clone()).unwrap_or_default());
        put(
            &format!("{prefix}.credit_code"),
            org.and_then(|o| o.credit_code.as_ref()).map(ToString::to_string).unwrap_or_default(),
        );
        put(
            &format!("{prefix}.institution_id"),
            org.and_then(|o| o.institution_id.as_ref()).map(ToString::to_string).unwrap_or_default(),
        );
    };
    let employer = p.employer.as_ref();
    organisation("employer.organisation", employer.map(|e| &e.organisation), &mut put);
    put("employer.post", employer.map(|e| e.post.clone()).unwrap_or_default());
    put("employer.since", date_text(employer.and_then(|e| e.since)));
    organisation("represented_unit", p.represented_unit.as_ref(), &mut put);
    let categories: Vec<_> = p
        .categories
        .iter()
        .map(|h| {
            serde_json::json!({
                "category": h.category.code(),
                "evidence": h.evidence,
                "valid_until": date_text(h.valid_until),
                "verified": h.verified,
                "verified_by": actor_view(h.verified_by.as_ref()),
                "verified_date": date_text(h.verified_date),
                "note": h.note,
            })
        })
        .collect();
    put("categories", serde_json::Value::from(categories).to_string());
    let conditions: Vec<_> = p
        .conditions
        .iter()
        .map(|c| {
            serde_json::json!({
                "condition": c.condition.code(),
                "evidence": c.evidence,
                "checked_date": date_text(c.checked_date),
                "checked_by": actor_view(c.checked_by.as_ref()),
                "met": c.met,
                "note": c.note,
            })
        })
        .collect();
    put("conditions", serde_json::Value::from(conditions).to_string());
    let specialties: Vec<_> = p
        .specialties
        .iter()
        .map(|s| {
            serde_json::json!({
                "code": s.code.as_str(),
                "level": s.level.map(SkillLevel::code).unwrap_or_default(),
                "note": s.note,
            })
        })
        .collect();
    put("specialties", serde_json::Value::from(specialties).to_string());
    put("professional_title", p.professional_title.clone());
    f
}

/// The fields that differ between two profiles, compared on plain values (a new mobile whose
/// mask looks the same is still a change) and shown masked.
pub fn diff(before: &Profile, after: &Profile) -> Vec<FieldChange> {
    let (plain_before, plain_after) = (fields(before, false), fields(after, false));
    let (masked_before, masked_after) = (fields(before, true), fields(after, true));
    plain_after
        .iter()
        .filter(|(path, value)| plain_before.get(*path) != Some(value))
        .map(|(path, _)| FieldChange {
            path: path.clone(),
            before: masked_before.get(path).cloned().unwrap_or_default(),
            after: masked_after.get(path).cloned().unwrap_or_default(),
        })
        .collect()
}

/// The fields a new profile sets, as changes from nothing; masked.
pub fn creation_changes(profile: &Profile) -> Vec<FieldChange> {
    fields(profile, true)
        .into_iter()
        .filter(|(_, value)| !value.is_empty() && value != "[]")
        .map(|(path, after)| FieldChange { path, before: String::new(), after })
        .collect()
}

/// Keeps the verifier of a category already verified before; marks the rest as verified by
/// `actor` on their date (default `today`). Unverified holdings carry no verifier.
pub fn stamp_categories(new: &mut [CategoryHolding], old: &[CategoryHolding], actor: &Actor, today: NaiveDate) {
    for holding in new {
        if !holding.verified {
            holding.verified_by = None;
            holding.verified_date = None;
            continue;
        }
        match old.iter().find(|o| o.category == holding.category && o.verified) {
            Some(earlier) => {
                holding.verified_by.clone_from(&earlier.verified_by);
                holding.verified_date = holding.verified_date.or(earlier.verified_date);
            }
            None => {
                holding.verified_by = Some(actor.clone());
                holding.verified_date.get_or_insert(today);
            }
        }
    }
}

/// Keeps the checker of a condition record that is unchanged; records `actor` (and `today` when
/// no date is given) as the checker of a record that was changed and says it was checked.
pub fn stamp_conditions(new: &mut [ConditionRecord], old: &[ConditionRecord], actor: &Actor, today: NaiveDate) {
    for record in new {
        let unchanged = old.iter().find(|o| {
            o.condition == record.condition
                && o.met == record.met
                && o.evidence == record.evidence
                && o.note == record.note
                && (record.checked_date.is_none() || o.checked_date == record.checked_date)
        });
        match unchanged {
            Some(earlier) => {
                record.checked_by.clone_from(&earlier.checked_by);
                record.checked_date = earlier.checked_date;
            }
            None if record.met || record.checked_date.is_some() => {
                record.checked_by = Some(actor.clone());
                record.checked_date.get_or_insert(today);
            }
            None => record.checked_by = None,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use supervision_kit::identity::DocumentType;

    use super::*;

    pub fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 2).unwrap()
    }

    pub fn resident(number: &str) -> IdentityDocument {
        IdentityDocument::parse(DocumentType::ResidentIdCard, number, "", today()).unwrap()
    }

    pub fn profile() -> Profile {
        Profile {
            kind: ExpertKind::Individual,
            name: "李明".into(),
            gender: Some(Gender::Male),
            birth_date: None,
            identity: resident("11010519491231002X"),
            other_identities: vec![],
            locality: Locality::County(Bureau::Xinhui),
            contact: Contact {
                mobile: "13812345678".into(),
                email: "li.ming@example.com".into(),
                address: "江门市新会区会城街道 1 号".into(),
            },
            bank_account: Some(BankAccount {
                holder_name: "李明".into(),
                bank_name: "中国工商银行".into(),
                branch_name: "江门分行营业部".into(),
                account_number: "6222021234567890123".into(),
            }),
            employer: None,
            represented_unit: None,
            categories: vec![CategoryHolding {
                category: Category::Technician,
                evidence: Evidence { description: "技师证书".into(), documents: vec![] },
                valid_until: None,
                verified: false,
                verified_by: None,
                verified_date: None,
                note: String::new(),
            }],
            conditions: vec![],
            specialties: vec![],
            professional_title: String::new(),
        }
    }

    /// An active expert with `profile()`.
    pub fn sample_expert() -> Expert {
        let at = today().and_hms_opt(9, 0, 0).unwrap().and_utc();
        Expert {
            id: ExpertId::generate(),
            profile: profile(),
            status: ExpertStatus::Active,
            civil_servant: vec![],
            trained: false,
            last_confirmed_year: 0,
            application_id: String::new(),
            current_term_end: None,
            appointment: None,
            revision: 1,
            created_at: at,
            updated_at: at,
        }
    }

    fn actor(subject: &str) -> Actor {
        Actor { subject: subject.into(), role: "CITY_ADMIN".into(), bureau: Some("440700".into()) }
    }

    fn fields_of(problems: Vec<(String, String)>) -> Vec<String> {
        problems.into_iter().map(|(f, _)| f).collect()
    }

    #[test]
    fn ids_are_prefixed_and_distinct_by_kind() {
        let id = ExpertId::generate();
        assert_eq!(ExpertId::parse(id.as_str()), Some(id.clone()));
        assert!(ChangeId::parse(id.as_str()).is_none());
        assert!(ExpertId::parse("ins_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f").is_none());
    }

    #[test]
    fn codes_round_trip() {
        for c in Category::ALL {
            assert_eq!(Category::from_code(c.code()), Some(*c));
        }
        for p in ProfilePath::ALL {
            assert_eq!(ProfilePath::from_code(p.code()), Some(*p));
        }
        assert_eq!(Category::ALL.len(), 11, "article 5 has eleven items");
        assert_eq!(Condition::ALL.len(), 4, "article 6 has four items");
    }

    #[test]
    fn a_consistent_profile_has_no_problems() {
        assert!(profile().problems().is_empty());
    }

    #[test]
    fn a_unit_representative_names_the_unit_represented() {
        let p = Profile { kind: ExpertKind::UnitRepresentative, ..profile() };
        assert_eq!(fields_of(p.problems()), ["profile.represented_unit"]);
        let unit = Organisation {
            name: "江门市职业技能鉴定指导中心".into(), credit_code: None, institution_id: None
        };
        let p = Profile { kind: ExpertKind::UnitRepresentative, represented_unit: Some(unit.clone()), ..profile() };
        assert!(p.problems().is_empty());
        let p = Profile { represented_unit: Some(unit), ..profile() };
        assert_eq!(fields_of(p.problems()), ["profile.represented_unit"], "an individual represents no unit");
    }

    #[test]
    fn the_birth_date_agrees_with_the_identity_document() {
        let p = Profile { birth_date: NaiveDate::from_ymd_opt(1949, 12, 31), ..profile() };
        assert!(p.problems().is_empty());
        let p = Profile { birth_date: NaiveDate::from_ymd_opt(1950, 1, 1), ..profile() };
        assert_eq!(fields_of(p.problems()), ["profile.birth_date"]);
    }

    #[test]
    fn a_duplicate_document_is_refused() {
        let p = Profile { other_identities: vec![resident("11010519491231002X")], ..profile() };
        assert_eq!(fields_of(p.problems()), ["profile.other_identities[0]"]);
    }

    #[test]
    fn the_bank_account_is_in_the_experts_own_name() {
        let mut p = profile();
        p.bank_account.as_mut().unwrap().holder_name = "李 明".into();
        assert!(p.problems().is_empty(), "spacing does not matter");
        p.bank_account.as_mut().unwrap().holder_name = "王芳".into();
        assert_eq!(fields_of(p.problems()), ["profile.bank_account.holder_name"]);
    }

    #[test]
    fn the_employer_key_is_the_credit_code_or_the_normalised_name() {
        let org = |name: &str, code: Option<&str>| Organisation {
            name: name.into(),
            credit_code: code.map(|c| CreditCode::parse(c).unwrap()),
            institution_id: None,
        };
        assert_eq!(org("任意", Some("91350100M000100Y43")).key(), "91350100M000100Y43");
        assert_eq!(org("江门市（示例）有限公司 ", None).key(), org("江门市(示例)有限公司", None).key());
        assert_eq!(org("ＡＢＣ Ltd", None).key(), "abcltd");
    }

    #[test]
    fn changes_name_the_leaf_paths_with_masked_values() {
        let before = profile();
        let mut after = profile();
        after.contact.mobile = "13912345678".into();
        after.professional_title = "高级工程师".into();
        let changes = diff(&before, &after);
        let paths: Vec<_> = changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["contact.mobile", "professional_title"]);
        assert_eq!(changes[0].before, "138****5678");
        assert_eq!(changes[0].after, "139****5678");
    }

    #[test]
    fn a_change_hidden_by_the_mask_is_still_a_change() {
        let before = profile();
        let mut after = profile();
        after.contact.mobile = "13812395678".into();
        after.contact.address = "江门市蓬江区".into();
        let changes = diff(&before, &after);
        let paths: Vec<_> = changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["contact.address", "contact.mobile"]);
        assert_eq!((changes[0].before.as_str(), changes[0].after.as_str()), ("***", "***"));
    }

    #[test]
    fn change_records_hold_no_plain_personal_data() {
        let p = Profile { other_identities: vec![resident("360426199101010071")], ..profile() };
        let text = serde_json::to_string(&creation_changes(&p)).unwrap();
        for plain in
            ["11010519491231002X", "360426199101010071", "13812345678", "6222021234567890123", "li.ming@", "会城"]
        {
            assert!(!text.contains(plain), "{plain} in {text}");
        }
        assert!(text.contains("**************002X"));
    }

    #[test]
    fn a_condition_check_records_its_checker_until_it_changes() {
        let record = |met: bool| ConditionRecord {
            condition: Condition::CleanRecord,
            evidence: Evidence { description: "无犯罪记录证明".into(), documents: vec![] },
            checked_date: None,
            checked_by: None,
            met,
            note: String::new(),
        };
        let mut old = vec![record(true)];
        stamp_conditions(&mut old, &[], &actor("reviewer-1"), today());
        assert_eq!(
            (old[0].checked_by.as_ref().unwrap().subject.as_str(), old[0].checked_date),
            ("reviewer-1", Some(today()))
        );

        let mut same = vec![record(true)];
        stamp_conditions(&mut same, &old, &actor("admin-2"), today().succ_opt().unwrap());
        assert_eq!(same[0].checked_by.as_ref().unwrap().subject, "reviewer-1", "unchanged: the first check stands");

        let mut changed = vec![record(false)];
        changed[0].checked_date = Some(today());
        stamp_conditions(&mut changed, &old, &actor("admin-2"), today());
        assert_eq!(changed[0].checked_by.as_ref().unwrap().subject, "admin-2");

        let mut unchecked = vec![record(false)];
        stamp_conditions(&mut unchecked, &[], &actor("admin-2"), today());
        assert!(unchecked[0].checked_by.is_none());
    }

    #[test]
    fn a_verification_keeps_its_first_verifier() {
        let mut old = profile().categories;
        old[0].verified = true;
        stamp_categories(&mut old, &[], &actor("reviewer-1"), today());
        assert_eq!(old[0].verified_by.as_ref().unwrap().subject, "reviewer-1");
        assert_eq!(old[0].verified_date, Some(today()));

        let mut again = profile().categories;
        again[0].verified = true;
        stamp_categories(&mut again, &old, &actor("admin-2"), today().succ_opt().unwrap());
        assert_eq!(again[0].verified_by.as_ref().unwrap().subject, "reviewer-1");
        assert_eq!(again[0].verified_date, Some(today()));
    }
}
