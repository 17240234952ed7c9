//! 申报 — an application to a call (article 7(二)), and its materials.
//!
//! Personal data (identity number, contact details, bank account) is plain only in memory: the
//! store encrypts it with the deployment's key and indexes the identity number blindly, as the
//! registry does; every view that leaves the service for a role without full access masks it.

use std::fmt;

use chrono::{DateTime, Utc};
use supervision_kit::{auth::Actor, identity::IdentityDocument, vocab::OnBehalf};
use supervision_proto::recruitment as pb;

use super::Call;

/// The largest material accepted: 10 MiB (recruitment.proto, UploadMaterialRequest).
pub const MAX_MATERIAL_BYTES: usize = 10 * 1024 * 1024;
/// At most this many materials (removed ones included) per application.
pub const MAX_MATERIALS: usize = 50;
/// The media types a material may have.
pub const MEDIA_TYPES: [&str; 3] = ["application/pdf", "image/jpeg", "image/png"];
/// The four conditions of article 6, all attested before submission (同时具备).
pub const CONDITIONS: [&str; 4] = [
    "ELIGIBILITY_CONDITION_COMMITMENT",
    "ELIGIBILITY_CONDITION_INTEGRITY",
    "ELIGIBILITY_CONDITION_COMPETENCE",
    "ELIGIBILITY_CONDITION_CLEAN_RECORD",
];
/// The commitment of article 7(二) the applicant gives at submission.
pub const COMMITMENT_TEXT: &str = "本人承诺所填写内容及提交的材料真实、有效，如有虚假，愿承担相应责任。";

macro_rules! prefixed_id {
    ($name:ident, $prefix:literal, $what:literal) => {
        #[doc = concat!("The service's opaque id of ", $what, ": `", $prefix, "` and 32 hex digits of a UUIDv7.")]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            const PREFIX: &'static str = $prefix;

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

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(ApplicationId, "app_", "an application");
prefixed_id!(MaterialId, "mat_", "a material");
prefixed_id!(ReviewItemId, "rvi_", "a review item");

/// What a verdict is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewTarget {
    /// An article 6 condition (contract name).
    Condition(String),
    /// A claimed article 5 category (contract name).
    Category(String),
    Material(MaterialId),
}

impl ReviewTarget {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Condition(_) => "CONDITION",
            Self::Category(_) => "CATEGORY",
            Self::Material(_) => "MATERIAL",
        }
    }

    pub fn value(&self) -> &str {
        match self {
            Self::Condition(c) | Self::Category(c) => c,
            Self::Material(m) => m.as_str(),
        }
    }

    pub fn from_parts(kind: &str, value: &str) -> Option<Self> {
        match kind {
            "CONDITION" => Some(Self::Condition(value.to_owned())),
            "CATEGORY" => Some(Self::Category(value.to_owned())),
            "MATERIAL" => MaterialId::parse(value).map(Self::Material),
            _ => None,
        }
    }
}

/// A reviewer's verdict on one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Approved,
    Rejected,
    Returned,
}

impl Verdict {
    pub fn code(self) -> &'static str {
        match self {
            Self::Approved => "APPROVED",
            Self::Rejected => "REJECTED",
            Self::Returned => "RETURNED",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        [Self::Approved, Self::Rejected, Self::Returned].into_iter().find(|v| v.code() == code)
    }
}

/// A verdict as entered, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewInput {
    pub target: ReviewTarget,
    pub verdict: Verdict,
    pub reason: String,
}

/// A verdict as recorded; a later one on the same target supersedes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewItem {
    pub id: ReviewItemId,
    pub input: ReviewInput,
    pub reviewer: Actor,
    pub reviewed_at: DateTime<Utc>,
    pub submission_number: i32,
}

/// How a review ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Rejected,
    Returned,
}

impl Outcome {
    pub fn code(self) -> &'static str {
        match self {
            Self::Passed => "PASSED",
            Self::Rejected => "REJECTED",
            Self::Returned => "RETURNED",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        [Self::Passed, Self::Rejected, Self::Returned].into_iter().find(|v| v.code() == code)
    }
}

/// The conclusion of a review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conclusion {
    pub outcome: Outcome,
    pub reason: String,
    pub reviewer: Actor,
    pub concluded_at: DateTime<Utc>,
}

/// Where an application stands (DOMAIN.md 6.2); codes are the contract's names without prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplicationStatus {
    Draft,
    Submitted,
    UnderReview,
    Returned,
    Rejected,
    PassedReview,
    InPublicity,
    ObjectionPending,
    PublicityCleared,
    AppointmentPending,
    Appointed,
    Withdrawn,
}

impl ApplicationStatus {
    const ALL: [Self; 12] = [
        Self::Draft,
        Self::Submitted,
        Self::UnderReview,
        Self::Returned,
        Self::Rejected,
        Self::PassedReview,
        Self::InPublicity,
        Self::ObjectionPending,
        Self::PublicityCleared,
        Self::AppointmentPending,
        Self::Appointed,
        Self::Withdrawn,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::Draft => "DRAFT",
            Self::Submitted => "SUBMITTED",
            Self::UnderReview => "UNDER_REVIEW",
            Self::Returned => "RETURNED",
            Self::Rejected => "REJECTED",
            Self::PassedReview => "PASSED_REVIEW",
            Self::InPublicity => "IN_PUBLICITY",
            Self::ObjectionPending => "OBJECTION_PENDING",
            Self::PublicityCleared => "PUBLICITY_CLEARED",
            Self::AppointmentPending => "APPOINTMENT_PENDING",
            Self::Appointed => "APPOINTED",
            Self::Withdrawn => "WITHDRAWN",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    /// Whether the applicant may still change it and its materials.
    pub fn is_editable(self) -> bool {
        matches!(self, Self::Draft | Self::Returned)
    }
}

pub use supervision_kit::contact::{BankAccount, Contact};

/// What the applicant declares, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    pub identity: IdentityDocument,
    pub contact: Contact,
    pub bank_account: Option<BankAccount>,
    /// The rest of the contract's profile, validated and normalised, with the identity number,
    /// contact and bank account cleared: it is stored as it is.
    pub rest: pb::ApplicantProfile,
}

impl Profile {
    /// Contract names of the article 5 categories claimed.
    pub fn categories(&self) -> Vec<&'static str> {
        self.rest
            .categories
            .iter()
            .filter_map(|c| supervision_proto::common::ExpertCategory::try_from(c.category).ok())
            .map(|c| c.as_str_name())
            .collect()
    }

    /// Contract names of the article 6 conditions attested.
    pub fn conditions(&self) -> Vec<&'static str> {
        self.rest
            .conditions
            .iter()
            .filter_map(|c| supervision_proto::common::EligibilityCondition::try_from(c.condition).ok())
            .map(|c| c.as_str_name())
            .collect()
    }

    /// Every material id the claims and attestations name, with the field naming it.
    pub fn referenced_materials(&self) -> Vec<(String, &str)> {
        let claims = self.rest.categories.iter().enumerate().flat_map(|(i, c)| {
            c.material_ids
                .iter()
                .enumerate()
                .map(move |(j, m)| (format!("profile.categories[{i}].material_ids[{j}]"), m.as_str()))
        });
        let attested = self.rest.conditions.iter().enumerate().flat_map(|(i, c)| {
            c.material_ids
                .iter()
                .enumerate()
                .map(move |(j, m)| (format!("profile.conditions[{i}].material_ids[{j}]"), m.as_str()))
        });
        claims.chain(attested).collect()
    }
}

/// The commitment as given at submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attestation {
    pub text_version: String,
    pub text: String,
    pub attested_at: DateTime<Utc>,
    pub on_behalf: Option<OnBehalf>,
}

/// A validated upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMaterial {
    pub application_id: ApplicationId,
    /// Contract names; `category` and `condition` empty when not given.
    pub kind: String,
    pub category: String,
    pub condition: String,
    pub file_name: String,
    pub media_type: String,
    pub description: String,
    pub content: Vec<u8>,
}

/// A material as recruitment keeps it (its content apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Material {
    pub id: MaterialId,
    pub application_id: ApplicationId,
    pub kind: String,
    pub category: String,
    pub condition: String,
    pub file_name: String,
    pub media_type: String,
    pub size_bytes: i64,
    /// 64 lower-case hex digits.
    pub sha256: String,
    pub description: String,
    pub uploaded_by: Actor,
    pub uploaded_at: DateTime<Utc>,
    pub removed: bool,
}

/// An application as recruitment keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Application {
    pub id: ApplicationId,
    pub call_id: super::CallId,
    /// The APPLICANT user who owns it; empty when staff entered a paper application.
    pub owner_subject: String,
    pub profile: Profile,
    pub replaces_expert_id: String,
    pub status: ApplicationStatus,
    pub attestation: Option<Attestation>,
    pub on_behalf: Option<OnBehalf>,
    pub submission_count: i32,
    pub submitted_at: Option<DateTime<Utc>>,
    pub created_by: Actor,
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Every material, removed ones included, oldest first.
    pub materials: Vec<Material>,
    /// Who submitted it last (the applicant, or staff for them); empty before submission.
    pub submitted_by_subject: String,
    /// Every verdict, oldest first.
    pub review_items: Vec<ReviewItem>,
    /// The review's conclusion, once made.
    pub conclusion: Option<Conclusion>,
}

/// Why an application cannot make a transition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("application {id} is {status}; {action} needs one that is {needed}")]
pub struct ApplicationStateError {
    pub id: String,
    pub status: &'static str,
    pub action: &'static str,
    pub needed: &'static str,
}

/// A submission refused: each unmet precondition with the subject it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmet {
    pub subject: String,
    pub description: String,
}

impl Application {
    /// A new draft.
    pub fn draft(
        call_id: super::CallId,
        owner_subject: String,
        profile: Profile,
        replaces_expert_id: String,
        on_behalf: Option<OnBehalf>,
        created_by: Actor,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: ApplicationId::generate(),
            call_id,
            owner_subject,
            profile,
            replaces_expert_id,
            status: ApplicationStatus::Draft,
            attestation: None,
            on_behalf,
            submission_count: 0,
            submitted_at: None,
            created_by,
            revision: 1,
            created_at: now,
            updated_at: now,
            materials: Vec::new(),
            submitted_by_subject: String::new(),
            review_items: Vec::new(),
            conclusion: None,
        }
    }

    fn refuse(&self, action: &'static str, needed: &'static str) -> ApplicationStateError {
        ApplicationStateError { id: self.id.to_string(), status: self.status.code(), action, needed }
    }

    /// Refuses a change unless the application is a draft or returned for correction.
    pub fn ensure_editable(&self, action: &'static str) -> Result<(), ApplicationStateError> {
        if self.status.is_editable() { Ok(()) } else { Err(self.refuse(action, "DRAFT or RETURNED")) }
    }

    pub fn touch(&mut self, now: DateTime<Utc>) {
        self.revision += 1;
        self.updated_at = now;
    }

    /// The materials still attached.
    pub fn current_materials(&self) -> impl Iterator<Item = &Material> {
        self.materials.iter().filter(|m| !m.removed)
    }

    /// What stands between the application and its submission at `now` to `call`: the window,
    /// one category at least, all four conditions, the materials the claims name and the call
    /// requires, and for staff a signed paper commitment. Empty when it may be submitted.
    pub fn unmet_for_submission(&self, call: &Call, staff_entry: bool, now: DateTime<Utc>) -> Vec<Unmet> {
        let mut unmet = Vec::new();
        let mut add = |subject: String, description: String| unmet.push(Unmet { subject, description });
        if !call.accepts_submissions_at(now) {
            add(
                format!("call/{}", call.id),
                format!(
                    "the call is {} and accepts applications from {} until {} (exclusive); it is now {}",
                    call.status.code(),
                    call.details.window_start.to_rfc3339(),
                    call.details.window_end.to_rfc3339(),
                    now.to_rfc3339()
                ),
            );
        }
        let categories = self.profile.categories();
        if categories.is_empty() {
            add("profile.categories".into(), "at least one category of article 5 must be claimed".into());
        }
        if self.profile.rest.civil_servant_status == 0 {
            add(
                "profile.civil_servant_status".into(),
                "must be declared: the registry records it on appointment and fees depend on it (article 10)".into(),
            );
        }
        let conditions = self.profile.conditions();
        for condition in CONDITIONS {
            if !conditions.contains(&condition) {
                add(
                    format!("profile.conditions/{condition}"),
                    "all four conditions of article 6 must be attested".into(),
                );
            }
        }
        let current: Vec<&Material> = self.current_materials().collect();
        for (field, id) in self.profile.referenced_materials() {
            if !current.iter().any(|m| m.id.as_str() == id) {
                add(field, format!("names {id}, which is not a material of this application"));
            }
        }
        for (i, required) in call.details.required_materials.iter().enumerate() {
            if !required.mandatory {
                continue;
            }
            if !required.category.is_empty() && !categories.contains(&required.category.as_str()) {
                continue;
            }
            let present = current.iter().any(|m| {
                m.kind == required.kind
                    && (required.category.is_empty() || m.category == required.category)
                    && (required.condition.is_empty() || m.condition == required.condition)
            });
            if !present {
                add(
                    format!("call.required_materials[{i}]"),
                    format!("the call requires a {} material: {}", required.kind, required.description),
                );
            }
        }
        if staff_entry && !current.iter().any(|m| m.kind == "MATERIAL_KIND_SIGNED_COMMITMENT") {
            add(
                "materials/MATERIAL_KIND_SIGNED_COMMITMENT".into(),
                "staff submit only with the applicant's signed paper commitment uploaded".into(),
            );
        }
        unmet
    }

    /// Submits (or resubmits) with the commitment; the caller has checked
    /// [`Self::unmet_for_submission`].
    pub fn submit(&mut self, attestation: Attestation, now: DateTime<Utc>) -> Result<(), ApplicationStateError> {
        self.ensure_editable("submitting")?;
        self.status = ApplicationStatus::Submitted;
        self.attestation = Some(attestation);
        self.conclusion = None;
        self.submission_count += 1;
        self.submitted_at = Some(now);
        self.touch(now);
        Ok(())
    }

    /// Refuses a reviewer who entered, submitted or owns the application (article 7(三): the
    /// review is someone else's check).
    pub fn ensure_independent_reviewer(&self, reviewer: &str) -> Result<(), ApplicationStateError> {
        let involved =
            [self.created_by.subject.as_str(), self.submitted_by_subject.as_str(), self.owner_subject.as_str()];
        if involved.contains(&reviewer) {
            return Err(ApplicationStateError {
                id: self.id.to_string(),
                status: self.status.code(),
                action: "reviewing",
                needed: "reviewed by someone who neither entered nor submitted it",
            });
        }
        Ok(())
    }

    /// Records verdicts on a submitted application or one under review; it is then under review.
    /// Each target must be an item of this application: a condition, a claimed category, a
    /// current material. Problems are returned as (field, description).
    pub fn record_review(
        &mut self,
        inputs: Vec<(String, ReviewInput)>,
        reviewer: Actor,
        now: DateTime<Utc>,
    ) -> Result<Vec<ReviewItem>, ReviewProblem> {
        use ApplicationStatus::*;
        if !matches!(self.status, Submitted | UnderReview) {
            return Err(ReviewProblem::State(self.refuse("recording a review", "SUBMITTED or UNDER_REVIEW")));
        }
        self.ensure_independent_reviewer(&reviewer.subject).map_err(ReviewProblem::State)?;
        let categories = self.profile.categories();
        let mut wrong = Vec::new();
        for (field, input) in &inputs {
            let known = match &input.target {
                ReviewTarget::Condition(c) => CONDITIONS.contains(&c.as_str()),
                ReviewTarget::Category(c) => categories.contains(&c.as_str()),
                ReviewTarget::Material(m) => self.current_materials().any(|x| &x.id == m),
            };
            if !known {
                wrong.push((
                    format!("{field}.target"),
                    format!("{} {} is not an item of this application", input.target.kind(), input.target.value()),
                ));
            }
        }
        if !wrong.is_empty() {
            return Err(ReviewProblem::Targets(wrong));
        }
        let items: Vec<ReviewItem> = inputs
            .into_iter()
            .map(|(_, input)| ReviewItem {
                id: ReviewItemId::generate(),
                input,
                reviewer: reviewer.clone(),
                reviewed_at: now,
                submission_number: self.submission_count,
            })
            .collect();
        self.review_items.extend(items.iter().cloned());
        self.status = UnderReview;
        self.touch(now);
        Ok(items)
    }

    /// The latest verdict of the current submission on `target`.
    fn verdict_on(&self, target: &ReviewTarget) -> Option<Verdict> {
        self.review_items
            .iter()
            .rev()
            .find(|i| i.submission_number == self.submission_count && &i.input.target == target)
            .map(|i| i.input.verdict)
    }

    /// What stands between the review and a PASSED conclusion: all four conditions and one
    /// category at least approved, every current material approved (DOMAIN.md 6.2).
    pub fn unmet_for_passing(&self) -> Vec<Unmet> {
        let mut unmet = Vec::new();
        for c in CONDITIONS {
            let target = ReviewTarget::Condition(c.to_owned());
            if self.verdict_on(&target) != Some(Verdict::Approved) {
                unmet.push(Unmet { subject: format!("condition/{c}"), description: "is not approved".into() });
            }
        }
        let approved_category = self
            .profile
            .categories()
            .into_iter()
            .any(|c| self.verdict_on(&ReviewTarget::Category(c.to_owned())) == Some(Verdict::Approved));
        if !approved_category {
            unmet.push(Unmet {
                subject: "categories".into(),
                description: "no claimed category of article 5 is approved".into(),
            });
        }
        for m in self.current_materials() {
            if self.verdict_on(&ReviewTarget::Material(m.id.clone())) != Some(Verdict::Approved) {
                unmet.push(Unmet {
                    subject: format!("material/{}", m.id),
                    description: format!("{} ({}) is not verified as authentic and valid", m.file_name, m.kind),
                });
            }
        }
        unmet
    }

    /// Concludes the review of an application under review.
    pub fn conclude(&mut self, conclusion: Conclusion) -> Result<(), ReviewProblem> {
        if self.status != ApplicationStatus::UnderReview {
            return Err(ReviewProblem::State(self.refuse("concluding a review", "UNDER_REVIEW")));
        }
        self.ensure_independent_reviewer(&conclusion.reviewer.subject).map_err(ReviewProblem::State)?;
        if conclusion.outcome == Outcome::Passed {
            let unmet = self.unmet_for_passing();
            if !unmet.is_empty() {
                return Err(ReviewProblem::NotPassable(unmet));
            }
        }
        self.status = match conclusion.outcome {
            Outcome::Passed => ApplicationStatus::PassedReview,
            Outcome::Rejected => ApplicationStatus::Rejected,
            Outcome::Returned => ApplicationStatus::Returned,
        };
        let now = conclusion.concluded_at;
        self.conclusion = Some(conclusion);
        self.touch(now);
        Ok(())
    }

    /// Withdraws it before the review concludes.
    pub fn withdraw(&mut self, now: DateTime<Utc>) -> Result<(), ApplicationStateError> {
        use ApplicationStatus::*;
        if !matches!(self.status, Draft | Submitted | UnderReview | Returned) {
            return Err(self.refuse("withdrawing", "DRAFT, SUBMITTED, UNDER_REVIEW or RETURNED"));
        }
        self.status = Withdrawn;
        self.touch(now);
        Ok(())
    }
}

/// Why a review cannot be recorded or concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewProblem {
    State(ApplicationStateError),
    /// (field, description) of targets that are not items of the application.
    Targets(Vec<(String, String)>),
    NotPassable(Vec<Unmet>),
}

/// Which form of personal data a caller gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Plain values: CITY_ADMIN, CITY_REVIEWER, AUDITOR and the applicant themself.
    Full,
    /// Masked numbers, no postal address: everyone else, and every stored answer.
    Masked,
}

/// Filters of ListApplications.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplicationFilter {
    pub call_id: Option<String>,
    pub status: Option<ApplicationStatus>,
    pub name_contains: Option<String>,
    /// The blind index of an identity document.
    pub identity_index: Option<String>,
    /// Only this APPLICANT user's own.
    pub owner_subject: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_statuses_have_codes() {
        let id = ApplicationId::generate();
        assert_eq!(ApplicationId::parse(id.as_str()), Some(id));
        assert!(MaterialId::parse(ApplicationId::generate().as_str()).is_none());
        for s in ApplicationStatus::ALL {
            assert_eq!(ApplicationStatus::from_code(s.code()), Some(s));
            let name = format!("APPLICATION_STATUS_{}", s.code());
            assert!(pb::ApplicationStatus::from_str_name(&name).is_some(), "{name}");
        }
    }
}
