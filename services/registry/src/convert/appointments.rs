//! proto <-> domain for appointments, terms, certificates and status changes. Every problem with a
//! request becomes a field violation naming the field by its path in the request.

use chrono::{DateTime, NaiveDate, Utc};
use supervision_kit::{
    FieldViolations, Page,
    convert::{date, long_text, on_behalf, optional_date, required_date, required_enum, timestamp},
    vocab::{OnBehalf, is_prefixed_id},
};
use supervision_proto::{common, registry as pb};
use tonic::Status;

use super::experts::{categories, civil_servant_status, contract_value, evidence, profile_patch, required_coded};
use crate::{
    domain::{
        Appointment, AppointmentId, CategoryHolding, CertificateStatus, CivilServantStatus, Condition, ConditionRecord,
        Evidence, ExpertId, ExpertStatus, Profile, ProfilePatch, ProfilePath, StatusChange, StatusChangeId,
        StatusGround,
    },
    store::appointments::{AppointmentFilter, StatusChangeFilter, parse_appointment_token},
};

const MAX_REASON_CHARS: usize = 1000;

/// A validated AppointExpert request.
#[derive(Debug, Clone)]
pub struct NewAppointment {
    pub application_id: String,
    /// The reviewed profile, every path set (it replaces a reused record's profile whole).
    pub patch: ProfilePatch,
    pub profile: Profile,
    pub civil_servant_status: CivilServantStatus,
    pub decision_date: NaiveDate,
    pub term_start: NaiveDate,
    pub replaces: Option<ExpertId>,
}

/// A validated RenewTerm request.
#[derive(Debug, Clone)]
pub struct Renewal {
    pub renewal_id: String,
    pub expert_id: ExpertId,
    pub decision_date: NaiveDate,
    /// The 6(四) re-check, found met.
    pub clean_record: ConditionRecord,
    /// Categories as re-verified; `None` keeps the current ones.
    pub categories: Option<Vec<CategoryHolding>>,
}

/// A validated suspension, reinstatement, retirement or termination.
#[derive(Debug, Clone)]
pub struct StatusRequest {
    pub expert_id: ExpertId,
    pub ground: StatusGround,
    pub effective_date: NaiveDate,
    pub reason: String,
    pub incident_id: String,
    pub evidence: Evidence,
    pub on_behalf: Option<OnBehalf>,
}

fn expert_field(raw: &str, field: &str, v: &mut FieldViolations) -> Option<ExpertId> {
    let id = ExpertId::parse(raw.trim());
    if id.is_none() {
        v.add(field, "is not an expert id");
    }
    id
}

fn prefixed(raw: &str, prefix: &str, field: &str, what: &str, v: &mut FieldViolations) -> String {
    let raw = raw.trim();
    if !is_prefixed_id(raw, prefix) {
        v.add(field, format!("is not {what} id ({prefix}...)"));
    }
    raw.to_owned()
}

pub fn appointment_id(raw: &str, field: &str) -> Result<AppointmentId, Status> {
    AppointmentId::parse(raw.trim())
        .ok_or_else(|| supervision_kit::error::invalid_field(field, "is not an appointment id (apt_...)"))
}

/// AppointExpert: the application id is the idempotency key too; the reviewed profile must be
/// complete and hold at least one verified category (recruitment passes only verified ones).
pub fn new_appointment(req: &pb::AppointExpertRequest, today: NaiveDate) -> Result<NewAppointment, Status> {
    let mut v = FieldViolations::new();
    let application_id = prefixed(&req.application_id, "app_", "application_id", "an application", &mut v);
    if req.request_id != req.application_id {
        v.add("request_id", "must be the application id (recruitment's idempotency key)");
    }
    let patch = match &req.profile {
        Some(raw) => profile_patch(raw, ProfilePath::ALL, today, &mut v),
        None => {
            v.add("profile", "is required");
            ProfilePatch::default()
        }
    };
    let status = civil_servant_status(req.civil_servant_status, "civil_servant_status", &mut v);
    let decision_date = required_date(req.decision_date.as_ref(), "decision_date", &mut v);
    let term_start = optional_date(req.term_start.as_ref(), "term_start", &mut v).or(decision_date);
    if let (Some(decided), Some(start)) = (decision_date, term_start)
        && start < decided
    {
        v.add("term_start", "must not be before the decision date");
    }
    let replaces = (!req.replaces_expert_id.trim().is_empty())
        .then(|| expert_field(&req.replaces_expert_id, "replaces_expert_id", &mut v))
        .flatten();
    v.check()?;
    let profile = patch.clone().into_profile().expect("a clean conversion of every path holds every required part");
    let mut v = FieldViolations::new();
    for (field, problem) in profile.problems() {
        v.add(field, problem);
    }
    if !profile.categories.iter().any(|c| c.verified) {
        v.add("profile.categories", "an appointed expert holds at least one verified category");
    }
    v.check()?;
    Ok(NewAppointment {
        application_id,
        patch,
        profile,
        civil_servant_status: status.expect("checked above"),
        decision_date: decision_date.expect("checked above"),
        term_start: term_start.expect("checked above"),
        replaces,
    })
}

/// RenewTerm: the renewal id is the idempotency key; the 6(四) re-check must be found met with
/// its evidence (D11).
pub fn renewal(req: &pb::RenewTermRequest, today: NaiveDate) -> Result<Renewal, Status> {
    let mut v = FieldViolations::new();
    let renewal_id = prefixed(&req.renewal_id, "ren_", "renewal_id", "a renewal", &mut v);
    if req.request_id != req.renewal_id {
        v.add("request_id", "must be the renewal id (recruitment's idempotency key)");
    }
    let expert_id = expert_field(&req.expert_id, "expert_id", &mut v);
    let decision_date = required_date(req.decision_date.as_ref(), "decision_date", &mut v);
    let clean_record = match &req.clean_record_check {
        None => {
            v.add("clean_record_check", "is required: a renewal re-checks condition 6(四) (D11)");
            None
        }
        Some(c) => {
            let condition = required_coded(
                c.condition,
                "clean_record_check.condition",
                "CLEAN_RECORD (condition 6(四))",
                "ELIGIBILITY_CONDITION_",
                |p: common::EligibilityCondition| p.as_str_name(),
                Condition::from_code,
                &mut v,
            );
            if condition.is_some_and(|c| c != Condition::CleanRecord) {
                v.add("clean_record_check.condition", "must be CLEAN_RECORD (condition 6(四))");
            }
            if !c.met {
                v.add("clean_record_check.met", "a renewal needs condition 6(四) found met");
            }
            let evidence = evidence(c.evidence.as_ref(), "clean_record_check.evidence", true, &mut v);
            let checked_date = optional_date(c.checked_date.as_ref(), "clean_record_check.checked_date", &mut v);
            if checked_date.is_some_and(|d| d > today) {
                v.add("clean_record_check.checked_date", "must not be in the future");
            }
            let note = long_text(&c.note, "clean_record_check.note", MAX_REASON_CHARS, false, &mut v);
            Some(ConditionRecord {
                condition: Condition::CleanRecord,
                evidence,
                checked_date: checked_date.or(decision_date),
                checked_by: None,
                met: true,
                note,
            })
        }
    };
    let categories = (!req.categories.is_empty()).then(|| categories(&req.categories, today, &mut v));
    v.check()?;
    Ok(Renewal {
        renewal_id,
        expert_id: expert_id.expect("checked above"),
        decision_date: decision_date.expect("checked above"),
        clean_record: clean_record.expect("checked above"),
        categories,
    })
}

/// The effective date of a status change: today when absent, never in the past.
fn effective(raw: Option<&common::Date>, today: NaiveDate, v: &mut FieldViolations) -> NaiveDate {
    let date = optional_date(raw, "effective_date", v).unwrap_or(today);
    if date < today {
        v.add("effective_date", "must not be in the past");
    }
    date
}

fn reason(raw: &str, required: bool, v: &mut FieldViolations) -> String {
    long_text(raw, "reason", MAX_REASON_CHARS, required, v)
}

pub fn suspension(req: &pb::SuspendExpertRequest, today: NaiveDate) -> Result<StatusRequest, Status> {
    let mut v = FieldViolations::new();
    let expert_id = expert_field(&req.expert_id, "expert_id", &mut v);
    let reason = reason(&req.reason, true, &mut v);
    let incident_id = incident(&req.incident_id, false, &mut v);
    let effective_date = effective(req.effective_date.as_ref(), today, &mut v);
    let evidence = evidence(req.evidence.as_ref(), "evidence", false, &mut v);
    v.check()?;
    Ok(StatusRequest {
        expert_id: expert_id.expect("checked above"),
        ground: StatusGround::Suspended,
        effective_date,
        reason,
        incident_id,
        evidence,
        on_behalf: None,
    })
}

pub fn reinstatement(req: &pb::ReinstateExpertRequest, today: NaiveDate) -> Result<StatusRequest, Status> {
    let mut v = FieldViolations::new();
    let expert_id = expert_field(&req.expert_id, "expert_id", &mut v);
    let reason = reason(&req.reason, true, &mut v);
    v.check()?;
    Ok(StatusRequest {
        expert_id: expert_id.expect("checked above"),
        ground: StatusGround::Reinstated,
        effective_date: today,
        reason,
        incident_id: String::new(),
        evidence: Evidence::default(),
        on_behalf: None,
    })
}

/// RetireExpert (12(四)): the expert's own request; staff entering it say how it reached them
/// (D16), the expert sends no `on_behalf`.
pub fn retirement(
    req: &pb::RetireExpertRequest,
    now: DateTime<Utc>,
    today: NaiveDate,
    by_the_expert: bool,
) -> Result<StatusRequest, Status> {
    let mut v = FieldViolations::new();
    let expert_id = expert_field(&req.expert_id, "expert_id", &mut v);
    let effective_date = effective(req.effective_date.as_ref(), today, &mut v);
    let reason = reason(&req.reason, false, &mut v);
    let evidence = evidence(req.evidence.as_ref(), "evidence", false, &mut v);
    let on_behalf = on_behalf(req.on_behalf.as_ref(), "on_behalf", now, &mut v);
    match (by_the_expert, &on_behalf) {
        (true, Some(_)) => v.add("on_behalf", "is for staff entering a request they received; leave it empty"),
        (false, None) => v.add("on_behalf", "is required: say how the expert's request reached the bureau (D16)"),
        _ => {}
    }
    v.check()?;
    Ok(StatusRequest {
        expert_id: expert_id.expect("checked above"),
        ground: StatusGround::SelfRequest,
        effective_date,
        reason,
        incident_id: String::new(),
        evidence,
        on_behalf,
    })
}

/// TerminateExpert: an article 12 ground, the reason and the decision's evidence; 12(一) and
/// 12(二) also name the incident that substantiated them.
pub fn termination(req: &pb::TerminateExpertRequest, today: NaiveDate) -> Result<StatusRequest, Status> {
    let mut v = FieldViolations::new();
    let expert_id = expert_field(&req.expert_id, "expert_id", &mut v);
    let ground =
        required_enum::<pb::TerminationGround>(req.ground, "ground", "an article 12 ground", &mut v).map(|g| match g {
            pb::TerminationGround::Discipline => StatusGround::Discipline,
            pb::TerminationGround::FalseMaterials => StatusGround::FalseMaterials,
            pb::TerminationGround::WorkReasons | pb::TerminationGround::Unspecified => StatusGround::WorkReasons,
        });
    let needs_incident = matches!(ground, Some(StatusGround::Discipline | StatusGround::FalseMaterials));
    let incident_id = incident(&req.incident_id, needs_incident, &mut v);
    let effective_date = effective(req.effective_date.as_ref(), today, &mut v);
    let reason = reason(&req.reason, true, &mut v);
    let evidence = evidence(req.evidence.as_ref(), "evidence", true, &mut v);
    v.check()?;
    Ok(StatusRequest {
        expert_id: expert_id.expect("checked above"),
        ground: ground.expect("checked above"),
        effective_date,
        reason,
        incident_id,
        evidence,
        on_behalf: None,
    })
}

fn incident(raw: &str, required: bool, v: &mut FieldViolations) -> String {
    let raw = raw.trim();
    if raw.is_empty() {
        if required {
            v.add("incident_id", "is required for 12(一) and 12(二): the incident that substantiated the ground");
        }
        return String::new();
    }
    if !is_prefixed_id(raw, "inc_") {
        v.add("incident_id", "is not an incident id (inc_...)");
    }
    raw.to_owned()
}

pub fn appointment_listing(req: &pb::ListAppointmentsRequest) -> Result<(AppointmentFilter, Page), Status> {
    let mut v = FieldViolations::new();
    let page = Page::parse(req.page.as_ref(), "page", |t| parse_appointment_token(t).is_some(), &mut v);
    let expert_id = (!req.expert_id.trim().is_empty()).then(|| expert_field(&req.expert_id, "expert_id", &mut v));
    let (from, to) = date_range(req.term_end.as_ref(), "term_end", &mut v);
    let certificate_status = (req.certificate_status != 0).then(|| {
        required_coded(
            req.certificate_status,
            "certificate_status",
            "VALID, EXPIRED or REVOKED",
            "CERTIFICATE_STATUS_",
            |p: pb::CertificateStatus| p.as_str_name(),
            CertificateStatus::from_code,
            &mut v,
        )
    });
    v.check()?;
    Ok((
        AppointmentFilter {
            expert_id: expert_id.flatten(),
            term_end_from: from,
            term_end_to: to,
            certificate_status: certificate_status.flatten(),
        },
        page,
    ))
}

pub fn status_change_listing(req: &pb::ListStatusChangesRequest) -> Result<(StatusChangeFilter, Page), Status> {
    let mut v = FieldViolations::new();
    let page = Page::parse(req.page.as_ref(), "page", |t| StatusChangeId::parse(t).is_some(), &mut v);
    let expert_id = (!req.expert_id.trim().is_empty()).then(|| expert_field(&req.expert_id, "expert_id", &mut v));
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
    let since = req.since.as_ref().map(|t| {
        DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)).unwrap_or_else(|| {
            v.add("since", "is not a valid instant");
            DateTime::UNIX_EPOCH
        })
    });
    v.check()?;
    Ok((StatusChangeFilter { expert_id: expert_id.flatten(), status: status.flatten(), since }, page))
}

pub(crate) fn date_range(
    raw: Option<&common::DateRange>,
    field: &str,
    v: &mut FieldViolations,
) -> (Option<NaiveDate>, Option<NaiveDate>) {
    let Some(range) = raw else { return (None, None) };
    let from = optional_date(range.start.as_ref(), &format!("{field}.start"), v);
    let to = optional_date(range.end.as_ref(), &format!("{field}.end"), v);
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        v.add(field, "start must not be after end");
    }
    (from, to)
}

// ------------------------------------------------------------------------------------------
// domain -> proto
// ------------------------------------------------------------------------------------------

pub fn expert_status_to_proto(s: ExpertStatus) -> i32 {
    contract_value("EXPERT_STATUS_", s.code(), pb::ExpertStatus::from_str_name)
}

pub fn certificate_to_proto(c: CertificateStatus) -> i32 {
    contract_value("CERTIFICATE_STATUS_", c.code(), pb::CertificateStatus::from_str_name)
}

/// A term as shown on `today` (its certificate reads expired once the term is over).
pub fn appointment_to_proto(a: &Appointment, today: NaiveDate) -> pb::Appointment {
    pb::Appointment {
        id: a.id.to_string(),
        expert_id: a.expert_id.to_string(),
        term_number: a.term_number,
        kind: contract_value("APPOINTMENT_KIND_", a.kind.code(), pb::AppointmentKind::from_str_name),
        decision_date: Some(date(a.decision_date)),
        term: Some(common::DateRange { start: Some(date(a.term_start)), end: Some(date(a.term_end)) }),
        certificate_number: a.certificate_number.clone(),
        certificate_status: certificate_to_proto(a.certificate_on(today)),
        application_id: a.application_id.clone(),
        renewal_id: a.renewal_id.clone(),
        previous_appointment_id: a.previous_appointment_id.as_ref().map(ToString::to_string).unwrap_or_default(),
        end_reason: a
            .end_reason
            .map_or(0, |r| contract_value("TERM_END_REASON_", r.code(), pb::TermEndReason::from_str_name)),
        ended_date: a.ended_date.map(date),
        edition_number: i32::try_from(a.edition_number).unwrap_or(i32::MAX),
        create_time: Some(timestamp(a.created_at)),
    }
}

pub fn status_change_to_proto(c: &StatusChange) -> pb::ExpertStatusChange {
    pb::ExpertStatusChange {
        id: c.id.to_string(),
        expert_id: c.expert_id.to_string(),
        previous_status: expert_status_to_proto(c.previous_status),
        status: expert_status_to_proto(c.status),
        ground: contract_value("STATUS_CHANGE_GROUND_", c.ground.code(), pb::StatusChangeGround::from_str_name),
        effective_date: Some(date(c.effective_date)),
        time: Some(timestamp(c.at)),
        reason: c.reason.clone(),
        incident_id: c.incident_id.clone(),
        appointment_id: c.appointment_id.as_ref().map(ToString::to_string).unwrap_or_default(),
        certificate_status: certificate_to_proto(c.certificate_status),
        actor: Some(c.actor.to_proto()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(status: &Status) -> Vec<String> {
        use tonic_types::StatusExt;
        let mut f: Vec<String> = status
            .get_error_details()
            .bad_request()
            .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
            .unwrap_or_default();
        f.sort();
        f
    }

    #[test]
    fn an_appointment_is_keyed_by_its_application_and_dated() {
        let req = pb::AppointExpertRequest {
            request_id: "other".into(),
            application_id: "app_1".into(),
            profile: None,
            civil_servant_status: 0,
            decision_date: None,
            term_start: None,
            replaces_expert_id: "nobody".into(),
        };
        let err = new_appointment(&req, NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()).unwrap_err();
        assert_eq!(
            fields(&err),
            ["application_id", "civil_servant_status", "decision_date", "profile", "replaces_expert_id", "request_id"]
        );
    }

    #[test]
    fn a_termination_for_discipline_needs_its_incident_evidence_and_reason() {
        let today = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let req = pb::TerminateExpertRequest {
            expert_id: ExpertId::generate().to_string(),
            ground: pb::TerminationGround::Discipline as i32,
            effective_date: Some(date(NaiveDate::from_ymd_opt(2025, 12, 31).unwrap())),
            ..Default::default()
        };
        assert_eq!(
            fields(&termination(&req, today).unwrap_err()),
            ["effective_date", "evidence", "incident_id", "reason"]
        );
    }
}
