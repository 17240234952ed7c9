//! proto <-> domain. Every problem with a request becomes a field violation naming the field.

use chrono::{DateTime, NaiveDate, NaiveTime, Timelike, Utc};
use supervision_kit::{
    Bureau, FieldViolations, Page, SpecialtyCode,
    convert::{date, long_text, on_behalf, optional_text, required_date, required_enum, required_text, timestamp},
    vocab::is_prefixed_id,
};
use supervision_proto::{common, dispatch as pb};
use tonic::Status;

use crate::domain::{
    Answer, Assignment, AssignmentId, AssignmentStatus, Draw, DrawId, DrawStatus, Entered, ExclusionReason, Outcome,
    Pick, Report, ReportId, ResponseKind, WorkedSession, draw::exclusion_counts,
};
use crate::reports::Review;
use crate::responses::{NewAnswer, StatusChange};
use crate::{
    domain::{
        Activity, ActivityKind, ActivitySubject, ExceptionKind, FundSource, HalfDay, NewSubmission, NewTask, Session,
        SessionId, Submission, SubmissionFilter, SubmissionId, SubmissionKind, SubmissionStatus, Submitter, Task,
        TaskException, TaskFilter, TaskId, TaskMode, TaskOrigin, TaskStatus, TaskVisibility, Visibility,
    },
    store::{
        draws::{AssignmentFilter, DrawFilter},
        tasks::split_page_token,
    },
};
use supervision_draw::DiceDigits;

const MAX_SUBJECT_CHARS: usize = 200;
const MAX_CONTENT_CHARS: usize = 20_000;

pub fn new_submission(req: pb::CreateSubmissionRequest, now: DateTime<Utc>) -> Result<NewSubmission, Status> {
    let mut v = FieldViolations::new();
    let kind =
        required_enum::<pb::SubmissionType>(req.r#type, "type", "a submission type", &mut v).map(kind_from_proto);
    let on_behalf = on_behalf(req.on_behalf.as_ref(), "on_behalf", now, &mut v);
    let submitter = match kind {
        Some(SubmissionKind::CountyReport) => {
            if !req.expert_id.is_empty() {
                v.add("expert_id", "a county report names no expert");
            }
            match Bureau::from_proto(req.submitting_bureau) {
                Some(b) if b.is_county() => Some(Submitter::County(b)),
                _ => {
                    v.add("submitting_bureau", "a county report names the reporting county (440703 ... 440785)");
                    None
                }
            }
        }
        Some(_) => {
            if req.submitting_bureau != 0 {
                v.add("submitting_bureau", "only a county report names a submitting bureau");
            }
            if is_prefixed_id(&req.expert_id, "exp_") {
                Some(Submitter::Expert { expert_id: req.expert_id.clone(), on_behalf })
            } else {
                v.add("expert_id", "must be the submitting expert's id (exp_...)");
                None
            }
        }
        None => None,
    };
    let source_party = match req.source_party {
        0 => String::new(),
        value => required_enum::<pb::SourceParty>(value, "source_party", "a known source party", &mut v)
            .map(|s| s.as_str_name().to_owned())
            .unwrap_or_default(),
    };
    if !req.institution_id.is_empty() && !is_prefixed_id(&req.institution_id, "ins_") {
        v.add("institution_id", "must be an institution id (ins_...)");
    }
    let subject = required_text(&req.subject, "subject", MAX_SUBJECT_CHARS, &mut v);
    let content = long_text(&req.content, "content", MAX_CONTENT_CHARS, true, &mut v);
    // The form here; that each is an uploaded file the caller may attach is checked against the
    // store (`attachments::check_named`).
    attachment_ids(&submission_attachments(&req), &mut v);
    v.check()?;
    let (Some(kind), Some(submitter)) = (kind, submitter) else { unreachable!("recorded as violations") };
    Ok(NewSubmission {
        kind,
        submitter,
        source_party,
        institution_id: req.institution_id,
        subject,
        content,
        attachment_ids: req.attachment_ids,
    })
}

const MAX_ATTACHMENTS: usize = 50;

/// The form of attachment ids named as `(field, id)`: `att_...`, at most 50 (a file may support
/// more than one finding).
fn attachment_ids(named: &[(String, String)], v: &mut FieldViolations) {
    if named.len() > MAX_ATTACHMENTS {
        v.add(named[MAX_ATTACHMENTS].0.clone(), format!("at most {MAX_ATTACHMENTS} attachments"));
    }
    for (field, id) in named {
        if !crate::attachments::is_attachment_id(id) {
            v.add(field.clone(), "is not an attachment id (att_...)");
        }
    }
}

/// The attachments a CreateSubmission names, as `(field, id)`.
pub fn submission_attachments(req: &pb::CreateSubmissionRequest) -> Vec<(String, String)> {
    req.attachment_ids.iter().enumerate().map(|(i, id)| (format!("attachment_ids[{i}]"), id.clone())).collect()
}

/// The attachments a report's content names, as `(field, id)`: its own and each finding's.
pub fn report_attachments(content: Option<&pb::ReportContent>, field: &str) -> Vec<(String, String)> {
    let Some(content) = content else { return Vec::new() };
    let items = |list: &[pb::ReportItem], name: &str| -> Vec<(String, String)> {
        list.iter()
            .enumerate()
            .flat_map(|(i, item)| {
                item.attachment_ids
                    .iter()
                    .enumerate()
                    .map(move |(j, id)| (format!("{field}.{name}[{i}].attachment_ids[{j}]"), id.clone()))
            })
            .collect()
    };
    let mut named = items(&content.violations, "violations");
    named.extend(items(&content.policy_problems, "policy_problems"));
    named.extend(
        content.attachment_ids.iter().enumerate().map(|(i, id)| (format!("{field}.attachment_ids[{i}]"), id.clone())),
    );
    named
}

pub fn submission_id(raw: &str, field: &str) -> Result<SubmissionId, Status> {
    SubmissionId::parse(raw).ok_or_else(|| supervision_kit::error::invalid_field(field, "is not a submission id"))
}

pub fn submission_listing(
    req: &pb::ListSubmissionsRequest,
    visibility: Visibility,
) -> Result<(SubmissionFilter, Page), Status> {
    let mut v = FieldViolations::new();
    let page = Page::parse(req.page.as_ref(), "page", |t| SubmissionId::parse(t).is_some(), &mut v);
    let kind = match req.r#type {
        0 => None,
        value => required_enum::<pb::SubmissionType>(value, "type", "a submission type", &mut v).map(kind_from_proto),
    };
    let status = match req.status {
        0 => None,
        value => {
            required_enum::<pb::SubmissionStatus>(value, "status", "a submission status", &mut v).map(status_from_proto)
        }
    };
    let expert_id = optional_text(&req.expert_id, "expert_id", 64, &mut v);
    if !expert_id.is_empty() && !is_prefixed_id(&expert_id, "exp_") {
        v.add("expert_id", "must be an expert id (exp_...)");
    }
    let institution_id = optional_text(&req.institution_id, "institution_id", 64, &mut v);
    if !institution_id.is_empty() && !is_prefixed_id(&institution_id, "ins_") {
        v.add("institution_id", "must be an institution id (ins_...)");
    }
    v.check()?;
    let filter = SubmissionFilter {
        visibility,
        kind,
        status,
        expert_id: (!expert_id.is_empty()).then_some(expert_id),
        institution_id: (!institution_id.is_empty()).then_some(institution_id),
    };
    Ok((filter, page))
}

fn kind_from_proto(t: pb::SubmissionType) -> SubmissionKind {
    match t {
        pb::SubmissionType::Unspecified | pb::SubmissionType::Opinion => SubmissionKind::Opinion,
        pb::SubmissionType::TipOff => SubmissionKind::TipOff,
        pb::SubmissionType::Violation => SubmissionKind::Violation,
        pb::SubmissionType::PolicyProblem => SubmissionKind::PolicyProblem,
        pb::SubmissionType::CountyReport => SubmissionKind::CountyReport,
    }
}

fn kind_to_proto(k: SubmissionKind) -> pb::SubmissionType {
    match k {
        SubmissionKind::Opinion => pb::SubmissionType::Opinion,
        SubmissionKind::TipOff => pb::SubmissionType::TipOff,
        SubmissionKind::Violation => pb::SubmissionType::Violation,
        SubmissionKind::PolicyProblem => pb::SubmissionType::PolicyProblem,
        SubmissionKind::CountyReport => pb::SubmissionType::CountyReport,
    }
}

fn status_from_proto(s: pb::SubmissionStatus) -> SubmissionStatus {
    match s {
        pb::SubmissionStatus::Unspecified | pb::SubmissionStatus::Received => SubmissionStatus::Received,
        pb::SubmissionStatus::Assigned => SubmissionStatus::Assigned,
        pb::SubmissionStatus::Answered => SubmissionStatus::Answered,
        pb::SubmissionStatus::Closed => SubmissionStatus::Closed,
    }
}

fn status_to_proto(s: SubmissionStatus) -> pb::SubmissionStatus {
    match s {
        SubmissionStatus::Received => pb::SubmissionStatus::Received,
        SubmissionStatus::Assigned => pb::SubmissionStatus::Assigned,
        SubmissionStatus::Answered => pb::SubmissionStatus::Answered,
        SubmissionStatus::Closed => pb::SubmissionStatus::Closed,
    }
}

pub fn submission_to_proto(s: Submission) -> pb::Submission {
    let d = s.details;
    let (expert_id, submitting_bureau, on_behalf) = match d.submitter {
        Submitter::Expert { expert_id, on_behalf } => (expert_id, 0, on_behalf),
        Submitter::County(b) => (String::new(), b.to_proto() as i32, None),
    };
    pb::Submission {
        id: s.id.to_string(),
        r#type: kind_to_proto(d.kind) as i32,
        expert_id,
        submitting_bureau,
        source_party: pb::SourceParty::from_str_name(&d.source_party).map_or(0, |p| p as i32),
        institution_id: d.institution_id,
        subject: d.subject,
        content: d.content,
        attachment_ids: d.attachment_ids,
        status: status_to_proto(s.status) as i32,
        copied_bureaus: Vec::new(),
        handler: s.handling.handler,
        answer: s.handling.answer,
        follow_up_task_id: s.handling.follow_up_task_id,
        close_note: s.handling.close_note,
        submitted_by: Some(s.submitted_by.to_proto()),
        on_behalf: on_behalf.map(|o| common::OnBehalf {
            channel: common::EntryChannel::from_str_name(&o.channel).map_or(0, |c| c as i32),
            received_time: Some(timestamp(o.received_at)),
            note: o.note,
        }),
        submit_time: Some(timestamp(s.submitted_at)),
        update_time: Some(timestamp(s.updated_at)),
    }
}

// ---------------------------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------------------------

const MAX_TITLE_CHARS: usize = 200;
const MAX_REFERENCE_CHARS: usize = 100;
const MAX_DESCRIPTION_CHARS: usize = 2_000;
const MAX_REASON_CHARS: usize = 500;
const MAX_SESSIONS: usize = 60;
const MAX_SPECIALTIES: usize = 20;
/// Far above any real team; keeps a typo from asking the draw for a thousand experts.
const MAX_TEAM: i32 = 10;

/// A contract enum that must be set, as the domain vocabulary whose codes are its names without
/// `$prefix`.
macro_rules! from_pb {
    ($value:expr, $pb:ty, $prefix:literal, $domain:ty, $field:expr, $what:expr, $v:expr) => {
        required_enum::<$pb>($value, $field, $what, $v)
            .and_then(|e| <$domain>::from_code(e.as_str_name().trim_start_matches($prefix)))
    };
}

/// A domain vocabulary value as its contract enum number.
macro_rules! to_pb {
    ($value:expr, $pb:ty, $prefix:literal) => {
        <$pb>::from_str_name(&format!(concat!($prefix, "{}"), $value.code())).map_or(0, |e| e as i32)
    };
}

pub fn new_task(req: pb::CreateTaskRequest) -> Result<NewTask, Status> {
    let mut v = FieldViolations::new();
    let bureau = Bureau::from_proto(req.dispatching_bureau);
    if bureau.is_none() {
        v.add("dispatching_bureau", "must be the city (440700) or a county bureau of D13");
    }
    if !is_prefixed_id(&req.institution_id, "ins_") {
        v.add("institution_id", "must be an institution id (ins_...)");
    }
    let title = required_text(&req.title, "title", MAX_TITLE_CHARS, &mut v);
    let activity = activity(req.activity.as_ref(), &mut v);
    let mode = from_pb!(req.mode, pb::TaskMode, "TASK_MODE_", TaskMode, "mode", "how it is carried out", &mut v);
    let origin = from_pb!(req.origin, pb::TaskOrigin, "TASK_ORIGIN_", TaskOrigin, "origin", "why it exists", &mut v);
    let complaint = origin == Some(TaskOrigin::Complaint);
    if !req.origin_submission_id.is_empty() {
        if !complaint {
            v.add("origin_submission_id", "only a COMPLAINT task names the submission it comes from");
        } else if SubmissionId::parse(&req.origin_submission_id).is_none() {
            v.add("origin_submission_id", "must be a submission id (sub_...)");
        }
    }
    if !req.reporter_expert_id.is_empty() {
        if !complaint {
            v.add("reporter_expert_id", "only a COMPLAINT task names the expert who reported it");
        } else if !is_prefixed_id(&req.reporter_expert_id, "exp_") {
            v.add("reporter_expert_id", "must be an expert id (exp_...)");
        }
    }
    let sessions = sessions(&req.sessions, &mut v);
    let team_size = req.team_size.and_then(|n| {
        let ok = (1..=MAX_TEAM).contains(&n);
        if !ok {
            v.add("team_size", format!("must be 1 to {MAX_TEAM}, or absent for the edition's default"));
        }
        u32::try_from(n).ok().filter(|_| ok)
    });
    let backup_count = req.backup_count.and_then(|n| {
        let ok = (0..=MAX_TEAM).contains(&n);
        if !ok {
            v.add("backup_count", format!("must be 0 to {MAX_TEAM}, or absent for the edition's default"));
        }
        u32::try_from(n).ok().filter(|_| ok)
    });
    let specialties = specialties(&req.specialties_wanted, &mut v);
    let fund_source = from_pb!(
        req.fund_source,
        common::FundSource,
        "FUND_SOURCE_",
        FundSource,
        "fund_source",
        "one of the two funds of article 10",
        &mut v
    );
    let urgent_reason = optional_text(&req.urgent_reason, "urgent_reason", MAX_REASON_CHARS, &mut v);
    match (req.urgent, urgent_reason.is_empty()) {
        (true, true) => v.add("urgent_reason", "an urgent task says why it is urgent"),
        (false, false) => v.add("urgent_reason", "only an urgent task has an urgent reason"),
        _ => {}
    }
    let exceptions = requested_exceptions(&req.exceptions, &mut v);
    v.check()?;
    let (Some(bureau), Some(activity), Some(mode), Some(origin), Some(fund_source)) =
        (bureau, activity, mode, origin, fund_source)
    else {
        unreachable!("recorded as violations")
    };
    Ok(NewTask {
        bureau,
        institution_id: req.institution_id,
        title,
        activity,
        mode,
        origin,
        origin_submission_id: req.origin_submission_id,
        reporter_expert_id: req.reporter_expert_id,
        sessions,
        team_size,
        backup_count,
        specialties,
        fund_source,
        urgent_reason: req.urgent.then_some(urgent_reason),
        exceptions,
    })
}

fn activity(raw: Option<&pb::Activity>, v: &mut FieldViolations) -> Option<Activity> {
    let Some(a) = raw else {
        v.add("activity", "is required: what is trained or evaluated, and how");
        return None;
    };
    let subject = from_pb!(
        a.subject,
        pb::ActivitySubject,
        "ACTIVITY_SUBJECT_",
        ActivitySubject,
        "activity.subject",
        "what is trained or evaluated",
        v
    );
    let kind = from_pb!(
        a.kind,
        pb::ActivityKind,
        "ACTIVITY_KIND_",
        ActivityKind,
        "activity.kind",
        "training or a kind of evaluation",
        v
    );
    let reference = optional_text(&a.reference, "activity.reference", MAX_REFERENCE_CHARS, v);
    let description = long_text(&a.description, "activity.description", MAX_DESCRIPTION_CHARS, false, v);
    Some(Activity { subject: subject?, kind: kind?, reference, description })
}

fn time_of_day(raw: Option<&common::TimeOfDay>, field: &str, v: &mut FieldViolations) -> Option<NaiveTime> {
    let t = raw?;
    let time = u32::try_from(t.hours)
        .ok()
        .zip(u32::try_from(t.minutes).ok())
        .and_then(|(h, m)| NaiveTime::from_hms_opt(h, m, 0));
    if time.is_none() {
        v.add(field, "must be hours 0 to 23 and minutes 0 to 59");
    }
    time
}

/// The sessions in the request's order (so later problems name the caller's indexes); a repeated
/// slot is named at its own index, field by field, with the index it repeats.
fn sessions(raw: &[pb::TaskSession], v: &mut FieldViolations) -> Vec<Session> {
    if raw.is_empty() {
        v.add("sessions", "a task has at least one session");
    }
    if raw.len() > MAX_SESSIONS {
        v.add("sessions", format!("at most {MAX_SESSIONS} sessions"));
    }
    let mut seen: Vec<((NaiveDate, HalfDay), usize)> = Vec::new();
    let mut sessions = Vec::with_capacity(raw.len());
    for (i, s) in raw.iter().enumerate() {
        let at = |part: &str| format!("sessions[{i}].{part}");
        if !s.id.is_empty() {
            v.add(at("id"), "is output only");
        }
        let date = required_date(s.date.as_ref(), &at("date"), v);
        let half_day = from_pb!(s.half_day, common::HalfDay, "HALF_DAY_", HalfDay, &at("half_day"), "AM or PM (D2)", v);
        let planned_start = time_of_day(s.planned_start.as_ref(), &at("planned_start"), v);
        let planned_end = time_of_day(s.planned_end.as_ref(), &at("planned_end"), v);
        let (Some(date), Some(half_day)) = (date, half_day) else { continue };
        if let Some((_, first)) = seen.iter().find(|(slot, _)| *slot == (date, half_day)) {
            let repeated = format!("repeats sessions[{first}]: {date} {} is already a session", half_day.code());
            v.add(at("date"), repeated.clone());
            v.add(at("half_day"), repeated);
            continue;
        }
        seen.push(((date, half_day), i));
        sessions.push(Session { id: SessionId::generate(), date, half_day, planned_start, planned_end });
    }
    sessions
}

fn specialties(raw: &[common::SpecialtyCode], v: &mut FieldViolations) -> Vec<SpecialtyCode> {
    if raw.len() > MAX_SPECIALTIES {
        v.add("specialties_wanted", format!("at most {MAX_SPECIALTIES}"));
    }
    let mut codes: Vec<SpecialtyCode> = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        match SpecialtyCode::parse(&s.code) {
            Some(code) if codes.contains(&code) => v.add(format!("specialties_wanted[{i}].code"), "is listed twice"),
            Some(code) => codes.push(code),
            None => v.add(format!("specialties_wanted[{i}].code"), "must be a code like 4-07-05 or 4-07-05-01"),
        }
    }
    codes
}

/// The exceptions a new task asks for: SMALL_TEAM and CROSS_COUNTY, each once, with a reason;
/// approval is the city's, later (the other kinds follow a draw, D15).
fn requested_exceptions(raw: &[pb::TaskException], v: &mut FieldViolations) -> Vec<TaskException> {
    let mut exceptions: Vec<TaskException> = Vec::new();
    for (i, e) in raw.iter().enumerate() {
        let at = |part: &str| format!("exceptions[{i}].{part}");
        let kind = from_pb!(
            e.kind,
            pb::TaskExceptionKind,
            "TASK_EXCEPTION_KIND_",
            ExceptionKind,
            &at("kind"),
            "an exception kind",
            v
        );
        let reason = required_text(&e.reason, &at("reason"), MAX_REASON_CHARS, v);
        if e.approved || e.approved_by.is_some() || e.approve_time.is_some() {
            v.add(at("approved"), "is output only: the city approves with ApproveTaskException");
        }
        if e.reduced_team_size != 0 {
            v.add(at("reduced_team_size"), "is only for a REDUCED_TEAM approval");
        }
        match kind {
            Some(ExceptionKind::ReducedTeam | ExceptionKind::NonRandomDesignation) => {
                v.add(at("kind"), "follows a draw that found too small a pool (D15); it is not requested at creation");
            }
            Some(kind) if exceptions.iter().any(|x| x.kind == kind) => v.add(at("kind"), "is requested twice"),
            Some(kind) => exceptions.push(TaskException { kind, reason, reduced_team_size: 0, approval: None }),
            None => {}
        }
    }
    exceptions
}

pub fn task_id(raw: &str, field: &str) -> Result<TaskId, Status> {
    TaskId::parse(raw).ok_or_else(|| supervision_kit::error::invalid_field(field, "is not a task id (tsk_...)"))
}

pub fn task_listing(req: &pb::ListTasksRequest, visibility: TaskVisibility) -> Result<(TaskFilter, Page), Status> {
    let mut v = FieldViolations::new();
    let page = Page::parse(req.page.as_ref(), "page", |t| split_page_token(t).is_some(), &mut v);
    let bureau = match req.dispatching_bureau {
        0 => None,
        value => {
            let b = Bureau::from_proto(value);
            if b.is_none() {
                v.add("dispatching_bureau", "must be a bureau of D13");
            }
            b
        }
    };
    if !req.institution_id.is_empty() && !is_prefixed_id(&req.institution_id, "ins_") {
        v.add("institution_id", "must be an institution id (ins_...)");
    }
    let status = match req.status {
        0 => None,
        value => from_pb!(value, pb::TaskStatus, "TASK_STATUS_", TaskStatus, "status", "a task status", &mut v),
    };
    let session_dates = match &req.session_dates {
        None => None,
        Some(range) => {
            let start = required_date(range.start.as_ref(), "session_dates.start", &mut v);
            let end = required_date(range.end.as_ref(), "session_dates.end", &mut v);
            match (start, end) {
                (Some(a), Some(b)) if b < a => {
                    v.add("session_dates.end", "must not be before the start");
                    None
                }
                (Some(a), Some(b)) => Some((a, b)),
                _ => None,
            }
        }
    };
    v.check()?;
    let filter = TaskFilter {
        visibility,
        bureau,
        institution_id: (!req.institution_id.is_empty()).then(|| req.institution_id.clone()),
        status,
        session_dates,
    };
    Ok((filter, page))
}

/// ApproveTaskException's fields: the kind, the approver's reason, and for REDUCED_TEAM the new N.
pub fn approval(req: &pb::ApproveTaskExceptionRequest) -> Result<(TaskId, ExceptionKind, String, u32), Status> {
    let mut v = FieldViolations::new();
    let id = TaskId::parse(&req.task_id);
    if id.is_none() {
        v.add("task_id", "is not a task id (tsk_...)");
    }
    let kind = from_pb!(
        req.kind,
        pb::TaskExceptionKind,
        "TASK_EXCEPTION_KIND_",
        ExceptionKind,
        "kind",
        "an exception kind",
        &mut v
    );
    let reason = required_text(&req.reason, "reason", MAX_REASON_CHARS, &mut v);
    let reduced = match (kind, req.reduced_team_size) {
        (Some(ExceptionKind::ReducedTeam), n) if n >= 1 => u32::try_from(n).unwrap_or_default(),
        (Some(ExceptionKind::ReducedTeam), _) => {
            v.add("reduced_team_size", "a reduced team has at least 1 expert");
            0
        }
        (_, 0) => 0,
        _ => {
            v.add("reduced_team_size", "is only for a REDUCED_TEAM approval");
            0
        }
    };
    v.check()?;
    let (Some(id), Some(kind)) = (id, kind) else { unreachable!("recorded as violations") };
    Ok((id, kind, reason, reduced))
}

/// A draw id and a required reason (AbandonDraw, VoidDraw).
pub fn draw_and_reason(draw_id: &str, reason: &str) -> Result<(DrawId, String), Status> {
    let mut v = FieldViolations::new();
    let id = DrawId::parse(draw_id);
    if id.is_none() {
        v.add("draw_id", "must be a draw id (drw_...)");
    }
    let reason = required_text(reason, "reason", MAX_REASON_CHARS, &mut v);
    v.check()?;
    Ok((id.expect("recorded as a violation"), reason))
}

/// An assignment id and a required reason (CancelAssignment).
pub fn assignment_and_reason(assignment_id: &str, reason: &str) -> Result<(AssignmentId, String), Status> {
    let mut v = FieldViolations::new();
    let id = AssignmentId::parse(assignment_id);
    if id.is_none() {
        v.add("assignment_id", "must be an assignment id (asg_...)");
    }
    let reason = required_text(reason, "reason", MAX_REASON_CHARS, &mut v);
    v.check()?;
    Ok((id.expect("recorded as a violation"), reason))
}

/// RecordNoShow's fields: the assignment, the session missed, and what happened.
pub fn no_show(req: &pb::RecordNoShowRequest) -> Result<(AssignmentId, String, String), Status> {
    let mut v = FieldViolations::new();
    let id = AssignmentId::parse(&req.assignment_id);
    if id.is_none() {
        v.add("assignment_id", "must be an assignment id (asg_...)");
    }
    if req.session_id.trim().is_empty() {
        v.add("session_id", "is required: the session the expert missed");
    }
    let note = optional_text(&req.note, "note", MAX_REASON_CHARS, &mut v);
    v.check()?;
    Ok((id.expect("recorded as a violation"), req.session_id.trim().to_owned(), note))
}

/// ListReplacements' fields.
pub fn list_replacements(req: &pb::ListReplacementsRequest) -> Result<(TaskId, Page), Status> {
    let mut v = FieldViolations::new();
    let id = TaskId::parse(&req.task_id);
    if id.is_none() {
        v.add("task_id", "must be a task id (tsk_...)");
    }
    let page = Page::parse(req.page.as_ref(), "page", |t| AssignmentId::parse(t).is_some(), &mut v);
    v.check()?;
    Ok((id.expect("recorded as a violation"), page))
}

pub fn replacement_to_proto(r: &crate::responses::Vacancy) -> pb::Replacement {
    use crate::domain::AssignmentStatus as S;
    let reason = match r.status {
        S::DeclinedOnTime | S::DeclinedLate | S::DeclinedExempt => pb::VacancyReason::Declined,
        S::Recused => pb::VacancyReason::Recused,
        S::NoResponse => pb::VacancyReason::NoResponse,
        S::NoShow => pb::VacancyReason::NoShow,
        S::CancelledStatusChange => pb::VacancyReason::StatusChange,
        _ => pb::VacancyReason::Cancelled,
    };
    pb::Replacement {
        vacated_assignment_id: r.vacated.to_string(),
        reason: reason as i32,
        promoted_assignment_id: r.promoted.clone(),
        time: Some(timestamp(r.at)),
        topped_up_assignment_ids: r.topped_up.clone(),
        order_exhausted: r.order_exhausted,
    }
}

/// GetDispatchLetter's fields: which letter, and the rendering asked for (HTML or text).
pub fn letter_request(
    req: &pb::GetDispatchLetterRequest,
) -> Result<(crate::letters::Selector, Option<common::FileFormat>), Status> {
    use pb::get_dispatch_letter_request::Selector as S;
    let mut v = FieldViolations::new();
    let selector = match &req.selector {
        Some(S::LetterId(id)) => {
            let id = crate::domain::LetterId::parse(id).map(crate::letters::Selector::Letter);
            if id.is_none() {
                v.add("letter_id", "must be a letter id (ltr_...)");
            }
            id
        }
        Some(S::AssignmentId(id)) => {
            let id = AssignmentId::parse(id).map(crate::letters::Selector::Assignment);
            if id.is_none() {
                v.add("assignment_id", "must be an assignment id (asg_...)");
            }
            id
        }
        None => {
            v.add("selector", "is required: letter_id or assignment_id");
            None
        }
    };
    let format = match common::FileFormat::try_from(req.format) {
        Ok(common::FileFormat::Unspecified) => None,
        Ok(f @ (common::FileFormat::Html | common::FileFormat::Text)) => Some(f),
        _ => {
            v.add("format", "must be HTML or TEXT, or unspecified for the record only");
            None
        }
    };
    v.check()?;
    Ok((selector.expect("recorded as a violation"), format))
}

/// VerifyDispatchLetter's fields.
pub fn letter_check(req: &pb::VerifyDispatchLetterRequest) -> Result<(String, String), Status> {
    let mut v = FieldViolations::new();
    let number = req.letter_number.trim();
    if number.is_empty() || number.len() > 64 {
        v.add("letter_number", "is required: the number printed on the letter");
    }
    let code = req.verification_code.trim();
    if code.len() != crate::letters::CODE_LEN || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        v.add(
            "verification_code",
            format!("must be the {} letters and digits on the letter", crate::letters::CODE_LEN),
        );
    }
    v.check()?;
    Ok((number.to_owned(), code.to_owned()))
}

pub fn letter_to_proto(view: &crate::letters::LetterView) -> pb::DispatchLetter {
    let l = &view.letter;
    pb::DispatchLetter {
        id: l.id.to_string(),
        letter_number: l.number.clone(),
        assignment_id: l.assignment_id.to_string(),
        task_id: l.task_id.to_string(),
        expert_id: l.expert_id.clone(),
        institution_id: view.institution_id.clone(),
        session_dates: view.dates.iter().map(|d| date(*d)).collect(),
        verification_code: l.code.clone(),
        status: if view.revoked.is_empty() {
            pb::DispatchLetterStatus::Valid
        } else {
            pb::DispatchLetterStatus::Revoked
        } as i32,
        issue_time: Some(timestamp(l.issued_at)),
        revoke_reason: view.revoked.clone(),
    }
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The letter as a self-contained HTML page or plain text (ids, number, dates and code only).
pub fn render_letter(view: &crate::letters::LetterView, format: common::FileFormat) -> common::FileContent {
    use sha2::{Digest, Sha256};
    let l = &view.letter;
    let dates: Vec<String> = view.dates.iter().map(|d| d.to_string()).collect();
    let status = if view.revoked.is_empty() { "有效".to_owned() } else { format!("已撤销（{}）", view.revoked) };
    let lines = [
        ("派遣函编号", l.number.clone()),
        ("任务", l.task_id.to_string()),
        ("委派", l.assignment_id.to_string()),
        ("专家", l.expert_id.clone()),
        ("被监督机构", view.institution_id.clone()),
        ("日期", dates.join("、")),
        ("核验码", l.code.clone()),
        ("状态", status),
    ];
    let (content, media_type, ext) = if format == common::FileFormat::Html {
        let rows: String = lines
            .iter()
            .map(|(k, v)| format!("<tr><th>{}</th><td>{}</td></tr>", escape_html(k), escape_html(v)))
            .collect();
        (
            format!(
                "<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{0}</title></head>\
                 <body><h1>社会监督专家派遣函</h1><table>{rows}</table>\
                 <p>机构可凭编号与核验码向派出单位核验本函是否对本任务、本日期有效。</p></body></html>",
                escape_html(&l.number)
            ),
            "text/html; charset=utf-8",
            "html",
        )
    } else {
        let text: String = lines.iter().map(|(k, v)| format!("{k}：{v}\n")).collect();
        (format!("社会监督专家派遣函\n{text}"), "text/plain; charset=utf-8", "txt")
    };
    let bytes = content.into_bytes();
    common::FileContent {
        file_name: format!("派遣函-{}.{ext}", l.number),
        media_type: media_type.into(),
        sha256: hex::encode(Sha256::digest(&bytes)),
        content: bytes,
    }
}

/// A submission id with one step of its handling (AssignSubmission, AnswerSubmission,
/// CloseSubmission).
pub fn submission_step(
    raw_id: &str,
    step: Result<crate::domain::Step, FieldViolations>,
) -> Result<(SubmissionId, crate::domain::Step), Status> {
    let (step, mut v) = match step {
        Ok(step) => (Some(step), FieldViolations::new()),
        Err(v) => (None, v),
    };
    let id = SubmissionId::parse(raw_id);
    if id.is_none() {
        v.add("submission_id", "must be a submission id (sub_...)");
    }
    v.check()?;
    Ok((id.expect("recorded as a violation"), step.expect("recorded as a violation")))
}

pub fn assign_step(req: &pb::AssignSubmissionRequest) -> Result<(SubmissionId, crate::domain::Step), Status> {
    let mut v = FieldViolations::new();
    let handler = required_text(&req.handler, "handler", 128, &mut v);
    let note = optional_text(&req.note, "note", MAX_REASON_CHARS, &mut v);
    let step = if v.is_empty() { Ok(crate::domain::Step::Assign { handler, note }) } else { Err(v) };
    submission_step(&req.submission_id, step)
}

pub fn answer_step(req: &pb::AnswerSubmissionRequest) -> Result<(SubmissionId, crate::domain::Step), Status> {
    let mut v = FieldViolations::new();
    let answer = long_text(&req.answer, "answer", MAX_CONTENT_CHARS, true, &mut v);
    let step = if v.is_empty() { Ok(crate::domain::Step::Answer { answer }) } else { Err(v) };
    submission_step(&req.submission_id, step)
}

pub fn close_step(req: &pb::CloseSubmissionRequest) -> Result<(SubmissionId, crate::domain::Step), Status> {
    let mut v = FieldViolations::new();
    let note = required_text(&req.note, "note", MAX_REASON_CHARS, &mut v);
    let follow_up = req.follow_up_task_id.trim().to_owned();
    if !follow_up.is_empty() && TaskId::parse(&follow_up).is_none() {
        v.add("follow_up_task_id", "must be a task id (tsk_...) or empty");
    }
    let step =
        if v.is_empty() { Ok(crate::domain::Step::Close { note, follow_up_task_id: follow_up }) } else { Err(v) };
    submission_step(&req.submission_id, step)
}

/// CancelTask's fields.
pub fn cancellation(req: &pb::CancelTaskRequest) -> Result<(TaskId, String), Status> {
    let mut v = FieldViolations::new();
    let id = TaskId::parse(&req.task_id);
    if id.is_none() {
        v.add("task_id", "is not a task id (tsk_...)");
    }
    let reason = required_text(&req.reason, "reason", MAX_REASON_CHARS, &mut v);
    v.check()?;
    Ok((id.expect("recorded as a violation"), reason))
}

fn time_to_proto(t: NaiveTime) -> common::TimeOfDay {
    common::TimeOfDay {
        hours: i32::try_from(t.hour()).unwrap_or_default(),
        minutes: i32::try_from(t.minute()).unwrap_or_default(),
    }
}

pub fn task_to_proto(t: Task) -> pb::Task {
    let d = t.details;
    pb::Task {
        id: t.id.to_string(),
        task_number: t.number.to_string(),
        dispatching_bureau: d.bureau.to_proto() as i32,
        institution_id: d.institution_id,
        title: d.title,
        activity: Some(pb::Activity {
            subject: to_pb!(d.activity.subject, pb::ActivitySubject, "ACTIVITY_SUBJECT_"),
            kind: to_pb!(d.activity.kind, pb::ActivityKind, "ACTIVITY_KIND_"),
            reference: d.activity.reference,
            description: d.activity.description,
        }),
        mode: to_pb!(d.mode, pb::TaskMode, "TASK_MODE_"),
        origin: to_pb!(d.origin, pb::TaskOrigin, "TASK_ORIGIN_"),
        origin_submission_id: d.origin_submission_id,
        reporter_expert_id: d.reporter_expert_id,
        sessions: d
            .sessions
            .into_iter()
            .map(|s| pb::TaskSession {
                id: s.id.to_string(),
                date: Some(date(s.date)),
                half_day: to_pb!(s.half_day, common::HalfDay, "HALF_DAY_"),
                planned_start: s.planned_start.map(time_to_proto),
                planned_end: s.planned_end.map(time_to_proto),
            })
            .collect(),
        team_size: i32::try_from(t.team_size).unwrap_or_default(),
        backup_count: i32::try_from(t.backup_count).unwrap_or_default(),
        specialties_wanted: d
            .specialties
            .iter()
            .map(|s| common::SpecialtyCode { code: s.as_str().to_owned(), name: String::new() })
            .collect(),
        fund_source: to_pb!(d.fund_source, common::FundSource, "FUND_SOURCE_"),
        urgent: d.urgent_reason.is_some(),
        urgent_reason: d.urgent_reason.unwrap_or_default(),
        exceptions: d
            .exceptions
            .into_iter()
            .map(|e| pb::TaskException {
                kind: to_pb!(e.kind, pb::TaskExceptionKind, "TASK_EXCEPTION_KIND_"),
                reason: e.reason,
                reduced_team_size: i32::try_from(e.reduced_team_size).unwrap_or_default(),
                approved: e.approval.is_some(),
                approved_by: e.approval.as_ref().map(|a| a.by.to_proto()),
                approve_time: e.approval.as_ref().map(|a| timestamp(a.at)),
            })
            .collect(),
        status: to_pb!(t.status, pb::TaskStatus, "TASK_STATUS_"),
        cancel_reason: t.cancel_reason,
        accepted_count: i32::try_from(t.accepted_count).unwrap_or_default(),
        edition_number: i32::try_from(t.edition_number).unwrap_or_default(),
        created_by: Some(t.created_by.to_proto()),
        create_time: Some(timestamp(t.created_at)),
        update_time: Some(timestamp(t.updated_at)),
        revision: t.revision,
    }
}

pub fn draw_id(raw: &str, field: &str) -> Result<DrawId, Status> {
    DrawId::parse(raw).ok_or_else(|| supervision_kit::error::invalid_field(field, "must be a draw id (drw_...)"))
}

/// The witness's optional dice digits.
pub fn dice(raw: &str) -> Result<Option<DiceDigits>, Status> {
    if raw.is_empty() {
        return Ok(None);
    }
    DiceDigits::parse(raw)
        .map(Some)
        .map_err(|e| supervision_kit::error::invalid_field("dice_digits", format!("must be 20 to 256 digits 0-9: {e}")))
}

fn exclusion_reason(r: ExclusionReason) -> i32 {
    pb::ExclusionReason::from_str_name(crate::draws::reason_name(r)).map_or(0, |e| e as i32)
}

pub fn draw_to_proto(d: &Draw) -> pb::Draw {
    let final_stage = match (d.kind, d.relaxations.is_empty()) {
        (crate::domain::DrawKind::Designation, _) => crate::designate::STAGE,
        (_, true) => "WALK",
        (_, false) => "RELAXED_WALK",
    };
    let mut picks: Vec<&Pick> = d.walk.iter().filter(|p| p.stage == final_stage).collect();
    picks.sort_by_key(|p| p.position);
    pb::Draw {
        id: d.id.to_string(),
        task_id: d.task_id.to_string(),
        kind: to_pb!(d.kind, pb::DrawKind, "DRAW_KIND_"),
        status: to_pb!(d.status, pb::DrawStatus, "DRAW_STATUS_"),
        supplements_draw_id: d.supplements.clone(),
        algorithm: d.algorithm.clone(),
        team_size: i32::try_from(d.team_size).unwrap_or_default(),
        backup_count: i32::try_from(d.backup_count).unwrap_or_default(),
        candidate_count: i32::try_from(d.candidate_count).unwrap_or_default(),
        candidate_list_sha256: d.frozen_list_sha256.clone(),
        exclusion_counts: exclusion_counts(&d.exclusions)
            .into_iter()
            .filter(|(_, _, any)| *any > 0)
            .map(|(r, first, any)| pb::ExclusionCount {
                reason: exclusion_reason(r),
                first_reason_count: i32::try_from(first).unwrap_or_default(),
                any_reason_count: i32::try_from(any).unwrap_or_default(),
            })
            .collect(),
        relaxations: d
            .pool_relaxations
            .iter()
            .map(|r| pb::Relaxation {
                rule: pb::RelaxedRule::from_str_name(&format!("RELAXED_RULE_{}", r.rule)).map_or(0, |r| r as i32),
                eligible_before: i32::try_from(r.eligible_before).unwrap_or_default(),
                eligible_after: i32::try_from(r.eligible_after).unwrap_or_default(),
                time: Some(timestamp(d.prepared_at)),
            })
            .chain(d.relaxations.iter().map(|r| pb::Relaxation {
                rule: pb::RelaxedRule::SameEmployer as i32,
                eligible_before: i32::try_from(d.candidate_count).unwrap_or_default(),
                eligible_after: i32::try_from(d.candidate_count).unwrap_or_default(),
                time: Some(timestamp(r.at)),
            }))
            .collect(),
        specialty_tier: i32::try_from(d.specialty_tier).unwrap_or_default(),
        seed_commitment: d.seed_commitment.clone(),
        server_seed: d.revealed_seed().to_owned(),
        dice_digits: d.dice_digits.clone(),
        seed_string: d.seed_string(),
        picks: picks
            .into_iter()
            .map(|p| pb::DrawPick {
                position: i32::try_from(p.position + 1).unwrap_or_default(),
                expert_id: p.expert_id.clone(),
                ticket: d.order.get(p.position).map(|(_, t)| t.clone()).unwrap_or_default(),
                outcome: match p.outcome {
                    Outcome::Primary => pb::PickOutcome::Primary,
                    Outcome::Backup => pb::PickOutcome::Backup,
                    Outcome::Skipped => pb::PickOutcome::Skipped,
                } as i32,
                skip_reason: match p.reasons.first().map(String::as_str) {
                    Some("SAME_EMPLOYER") => pb::SkipReason::SameEmployer,
                    Some("NOT_FREE") => pb::SkipReason::NoLongerFree,
                    Some("NOT_ACTIVE") => pb::SkipReason::NoLongerActive,
                    _ => pb::SkipReason::Unspecified,
                } as i32,
                time: Some(timestamp(p.at)),
                trained: !p.untrained.unwrap_or(false),
                assignment_id: p.assignment_id.clone(),
            })
            .collect(),
        operator: Some(d.operator.to_proto()),
        witness: d.witness.as_ref().map(|w| w.to_proto()),
        prepare_time: Some(timestamp(d.prepared_at)),
        witness_time: d.witnessed_at.map(timestamp),
        execute_time: d.executed_at.map(timestamp),
        abandon_reason: d.abandon_reason.clone(),
        void_record: d.void.as_ref().map(|v| pb::DrawVoid {
            reason: v.reason.clone(),
            voided_by: Some(v.by.to_proto()),
            void_time: Some(timestamp(v.at)),
        }),
        designation_reason: d.designation.as_ref().map(|x| x.reason.clone()).unwrap_or_default(),
        edition_number: i32::try_from(d.edition_number).unwrap_or_default(),
    }
}

pub fn assignment_id(raw: &str, field: &str) -> Result<AssignmentId, Status> {
    AssignmentId::parse(raw)
        .ok_or_else(|| supervision_kit::error::invalid_field(field, "must be an assignment id (asg_...)"))
}

/// An answer to an assignment: exactly one of accept, decline, recuse.
pub fn answer(req: &pb::RespondToAssignmentRequest, now: DateTime<Utc>) -> Result<(AssignmentId, NewAnswer), Status> {
    use pb::respond_to_assignment_request::Answer as A;
    let mut v = FieldViolations::new();
    let id = AssignmentId::parse(&req.assignment_id);
    if id.is_none() {
        v.add("assignment_id", "must be an assignment id (asg_...)");
    }
    let on_behalf = on_behalf(req.on_behalf.as_ref(), "on_behalf", now, &mut v);
    let mut answer = NewAnswer {
        kind: ResponseKind::Accept,
        decline_reason: String::new(),
        relation: None,
        detail: String::new(),
        on_behalf,
    };
    match &req.answer {
        None => v.add("answer", "set exactly one of accept, decline and recuse"),
        Some(A::Accept(accept)) => {
            if !accept.no_conflict_declared {
                v.add("accept.no_conflict_declared", "must be true: the expert declares no conflict (article 9(六))");
            }
            answer.detail = optional_text(&accept.note, "accept.note", 2000, &mut v);
        }
        Some(A::Decline(decline)) => {
            answer.kind = ResponseKind::Decline;
            answer.decline_reason =
                required_enum::<pb::DeclineReason>(decline.reason, "decline.reason", "a decline reason", &mut v)
                    .map(|r| r.as_str_name().to_owned())
                    .unwrap_or_default();
            answer.detail = optional_text(&decline.detail, "decline.detail", 2000, &mut v);
        }
        Some(A::Recuse(recuse)) => {
            answer.kind = ResponseKind::Recuse;
            answer.relation =
                required_enum::<common::RelationType>(recuse.relation, "recuse.relation", "a relation type", &mut v);
            answer.detail = optional_text(&recuse.detail, "recuse.detail", 2000, &mut v);
        }
    }
    v.check()?;
    Ok((id.expect("checked"), answer))
}

/// A status change from the registry's outbox; its id is the request's idempotency key.
pub fn status_change(req: &pb::ExpertStatusChangedRequest) -> Result<StatusChange, Status> {
    let mut v = FieldViolations::new();
    let Some(change) = req.change.as_ref() else {
        return Err(supervision_kit::error::invalid_field("change", "is required"));
    };
    if !is_prefixed_id(&change.id, "stc_") {
        v.add("change.id", "must be a status change id (stc_...)");
    } else if change.id != req.request_id {
        v.add("request_id", "must be the status change id");
    }
    if !is_prefixed_id(&change.expert_id, "exp_") {
        v.add("change.expert_id", "must be an expert id (exp_...)");
    }
    let status = required_enum::<supervision_proto::registry::ExpertStatus>(
        change.status,
        "change.status",
        "an expert status",
        &mut v,
    );
    let effective = required_date(change.effective_date.as_ref(), "change.effective_date", &mut v);
    v.check()?;
    Ok(StatusChange {
        id: change.id.clone(),
        expert_id: change.expert_id.clone(),
        status: status.map(|s| s.as_str_name().to_owned()).unwrap_or_default(),
        effective: effective.expect("checked"),
    })
}

/// The longest a worked half-day session may be, in minutes.
const MAX_SESSION_MINUTES: i32 = 720;

/// Sessions worked: each with a date, a half-day agreeing with its start time (AM before 12:30),
/// a start time and minutes.
pub fn worked_sessions(raw: &[pb::WorkedSession], field: &str, v: &mut FieldViolations) -> Vec<WorkedSession> {
    if raw.is_empty() {
        v.add(field, "list every session worked");
    }
    let mut out = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let at = |f: &str| format!("{field}[{i}].{f}");
        let day = required_date(s.date.as_ref(), &at("date"), v);
        let half_day = from_pb!(s.half_day, common::HalfDay, "HALF_DAY_", HalfDay, &at("half_day"), "AM or PM (D2)", v);
        if s.start_time.is_none() {
            v.add(at("start_time"), "is required");
        }
        let start = time_of_day(s.start_time.as_ref(), &at("start_time"), v);
        if let (Some(start), Some(half_day)) = (start, half_day) {
            let am = start < NaiveTime::from_hms_opt(12, 30, 0).expect("a time");
            if am != (half_day == HalfDay::Am) {
                v.add(at("half_day"), "must agree with start_time: AM before 12:30, PM from 12:30 (D2)");
            }
        }
        if !(1..=MAX_SESSION_MINUTES).contains(&s.minutes) {
            v.add(at("minutes"), format!("must be 1 to {MAX_SESSION_MINUTES}"));
        }
        let note = optional_text(&s.note, &at("note"), 500, v);
        if !s.task_session_id.is_empty() && SessionId::parse(&s.task_session_id).is_none() {
            v.add(at("task_session_id"), "must be a task session id");
        }
        if let (Some(day), Some(half_day), Some(start)) = (day, half_day, start) {
            out.push(WorkedSession {
                task_session_id: s.task_session_id.clone(),
                date: day.to_string(),
                half_day: half_day.code().to_owned(),
                start_time: start.format("%H:%M").to_string(),
                minutes: s.minutes.unsigned_abs(),
                note,
            });
        }
    }
    out
}

/// A report's content: the findings are required (article 8); the rest is kept as sent.
pub fn report_content(raw: Option<&pb::ReportContent>, field: &str, v: &mut FieldViolations) -> Vec<u8> {
    let Some(content) = raw else {
        v.add(field, "is required");
        return Vec::new();
    };
    long_text(&content.findings, &format!("{field}.findings"), MAX_CONTENT_CHARS, true, v);
    long_text(&content.suggestions, &format!("{field}.suggestions"), MAX_CONTENT_CHARS, false, v);
    // The form here; that each is a file uploaded for the assignment is checked against the store
    // (`attachments::check_named`).
    attachment_ids(&report_attachments(Some(content), field), v);
    prost::Message::encode_to_vec(content)
}

pub fn report_id(raw: &str, field: &str) -> Result<ReportId, Status> {
    ReportId::parse(raw).ok_or_else(|| supervision_kit::error::invalid_field(field, "must be a report id (rpt_...)"))
}

fn reason_text(raw: &str, field: &str, v: &mut FieldViolations) -> String {
    required_text(raw, field, 2000, v)
}

pub fn record_worked_sessions(
    req: &pb::RecordWorkedSessionsRequest,
    now: DateTime<Utc>,
) -> Result<(AssignmentId, Vec<WorkedSession>, Option<supervision_kit::vocab::OnBehalf>), Status> {
    let mut v = FieldViolations::new();
    let id = AssignmentId::parse(&req.assignment_id);
    if id.is_none() {
        v.add("assignment_id", "must be an assignment id (asg_...)");
    }
    let sessions = worked_sessions(&req.sessions, "sessions", &mut v);
    let on_behalf = on_behalf(req.on_behalf.as_ref(), "on_behalf", now, &mut v);
    v.check()?;
    Ok((id.expect("checked"), sessions, on_behalf))
}

pub fn submit_report(
    req: &pb::SubmitReportRequest,
    now: DateTime<Utc>,
) -> Result<(AssignmentId, Vec<u8>, Option<supervision_kit::vocab::OnBehalf>), Status> {
    let mut v = FieldViolations::new();
    let id = AssignmentId::parse(&req.assignment_id);
    if id.is_none() {
        v.add("assignment_id", "must be an assignment id (asg_...)");
    }
    let content = report_content(req.content.as_ref(), "content", &mut v);
    let on_behalf = on_behalf(req.on_behalf.as_ref(), "on_behalf", now, &mut v);
    v.check()?;
    Ok((id.expect("checked"), content, on_behalf))
}

pub fn correct_report(req: &pb::CorrectReportRequest) -> Result<(ReportId, Review), Status> {
    let mut v = FieldViolations::new();
    let id = ReportId::parse(&req.report_id);
    if id.is_none() {
        v.add("report_id", "must be a report id (rpt_...)");
    }
    let paths: Vec<&str> =
        req.update_mask.as_ref().map(|m| m.paths.iter().map(String::as_str).collect()).unwrap_or_default();
    if paths.is_empty() {
        v.add("update_mask", "name `content` and/or `sessions`");
    }
    for p in &paths {
        if !matches!(*p, "content" | "sessions") {
            v.add("update_mask", format!("`{p}` cannot be corrected; only `content` and `sessions`"));
        }
    }
    let content = paths.contains(&"content").then(|| report_content(req.content.as_ref(), "content", &mut v));
    let sessions = paths.contains(&"sessions").then(|| worked_sessions(&req.sessions, "sessions", &mut v));
    let reason = reason_text(&req.reason, "reason", &mut v);
    v.check()?;
    Ok((id.expect("checked"), Review::Correct { content, sessions, reason }))
}

pub fn void_report(req: &pb::VoidReportRequest) -> Result<(ReportId, Review), Status> {
    let mut v = FieldViolations::new();
    let id = ReportId::parse(&req.report_id);
    if id.is_none() {
        v.add("report_id", "must be a report id (rpt_...)");
    }
    let reason = reason_text(&req.reason, "reason", &mut v);
    v.check()?;
    Ok((id.expect("checked"), Review::Void { reason }))
}

pub fn return_report(req: &pb::ReturnReportRequest) -> Result<(ReportId, Review), Status> {
    let mut v = FieldViolations::new();
    let id = ReportId::parse(&req.report_id);
    if id.is_none() {
        v.add("report_id", "must be a report id (rpt_...)");
    }
    let reason = reason_text(&req.reason, "reason", &mut v);
    v.check()?;
    Ok((id.expect("checked"), Review::Return { reason }))
}

/// ListReports' filters, within what the caller may see.
pub fn report_listing(
    req: &pb::ListReportsRequest,
    visibility: crate::domain::TaskVisibility,
) -> Result<(crate::store::reports::ReportFilter, Page), Status> {
    let mut v = FieldViolations::new();
    let task_id = if req.task_id.is_empty() {
        None
    } else {
        let id = TaskId::parse(&req.task_id);
        if id.is_none() {
            v.add("task_id", "must be a task id (tsk_...)");
        }
        id
    };
    let status = match req.status {
        0 => None,
        value => {
            let s = pb::ReportStatus::try_from(value).ok().and_then(|s| {
                crate::domain::ReportStatus::from_code(s.as_str_name().trim_start_matches("REPORT_STATUS_"))
            });
            if s.is_none() {
                v.add("status", "must be a report status");
            }
            s
        }
    };
    let page = Page::parse(req.page.as_ref(), "page", |t| ReportId::parse(t).is_some(), &mut v);
    v.check()?;
    let expert_id = (!req.expert_id.is_empty()).then(|| req.expert_id.clone());
    Ok((crate::store::reports::ReportFilter { visibility, task_id, expert_id, status }, page))
}

fn entered_to_proto(e: &Entered) -> common::OnBehalf {
    common::OnBehalf {
        channel: common::EntryChannel::from_str_name(&e.channel).map_or(0, |c| c as i32),
        received_time: supervision_kit::storage::parse_instant(&e.received_at).ok().map(timestamp),
        note: e.note.clone(),
    }
}

pub fn report_to_proto(r: &Report) -> pb::Report {
    pb::Report {
        id: r.id.to_string(),
        assignment_id: r.assignment_id.to_string(),
        task_id: r.task_id.to_string(),
        expert_id: r.expert_id.clone(),
        status: to_pb!(r.status, pb::ReportStatus, "REPORT_STATUS_"),
        content: <pb::ReportContent as prost::Message>::decode(r.content.as_slice()).ok(),
        sessions: r.sessions.iter().map(worked_session_to_proto).collect(),
        revision: i32::try_from(r.revision).unwrap_or(i32::MAX),
        submitted_by: Some(r.submitted_by.to_proto()),
        on_behalf: r.on_behalf.as_ref().map(entered_to_proto),
        submit_time: Some(timestamp(r.submitted_at)),
        return_reason: r.return_reason.clone(),
        accepted_by: r.accepted_by.as_ref().map(|a| a.to_proto()),
        accept_time: r.accepted_at.map(timestamp),
        corrections: r
            .corrections
            .iter()
            .map(|c| pb::ReportCorrection {
                revision: i32::try_from(c.revision).unwrap_or(i32::MAX),
                reason: c.reason.clone(),
                corrected_by: Some(c.corrected_by.to_proto()),
                correct_time: supervision_kit::storage::parse_instant(&c.at).ok().map(timestamp),
            })
            .collect(),
        void_reason: r.void_reason.clone(),
        voided_by: r.voided_by.as_ref().map(|a| a.to_proto()),
        void_time: r.voided_at.map(timestamp),
    }
}

fn response_to_proto(r: &Answer) -> pb::AssignmentResponse {
    pb::AssignmentResponse {
        kind: pb::ResponseKind::from_str_name(&format!("RESPONSE_KIND_{}", r.kind)).map_or(0, |k| k as i32),
        decline_reason: pb::DeclineReason::from_str_name(&r.decline_reason).map_or(0, |k| k as i32),
        recusal_relation: common::RelationType::from_str_name(&r.relation).map_or(0, |k| k as i32),
        detail: r.detail.clone(),
        receive_time: Some(timestamp(r.received_at)),
        on_behalf: (!r.on_behalf_channel.is_empty()).then(|| common::OnBehalf {
            channel: common::EntryChannel::from_str_name(&r.on_behalf_channel).map_or(0, |c| c as i32),
            received_time: Some(timestamp(r.received_at)),
            note: r.on_behalf_note.clone(),
        }),
        entered_by: Some(r.entered_by.to_proto()),
    }
}

pub fn worked_session_to_proto(s: &WorkedSession) -> pb::WorkedSession {
    let (hours, minutes) = s.start_time.split_once(':').unwrap_or_default();
    pb::WorkedSession {
        task_session_id: s.task_session_id.clone(),
        date: s.date.parse::<NaiveDate>().ok().map(date),
        half_day: common::HalfDay::from_str_name(&format!("HALF_DAY_{}", s.half_day)).map_or(0, |h| h as i32),
        start_time: Some(common::TimeOfDay {
            hours: hours.parse().unwrap_or_default(),
            minutes: minutes.parse().unwrap_or_default(),
        }),
        minutes: i32::try_from(s.minutes).unwrap_or(i32::MAX),
        note: s.note.clone(),
    }
}

pub fn assignment_to_proto(a: &Assignment) -> pb::Assignment {
    pb::Assignment {
        decline_deadline: a.decline_deadline.map(timestamp),
        response: a.response.as_ref().map(response_to_proto),
        replaces_assignment_id: a.replaces.clone(),
        replaced_by_assignment_id: a.replaced_by.clone(),
        worked_sessions: a.worked_sessions.iter().map(worked_session_to_proto).collect(),
        report_id: a.report_id.clone(),
        fee_revision: i32::try_from(a.fee_revision).unwrap_or(i32::MAX),
        cancel_reason: a.cancel_reason.clone(),
        id: a.id.to_string(),
        task_id: a.task_id.to_string(),
        draw_id: a.draw_id.to_string(),
        expert_id: a.expert_id.clone(),
        position: i32::try_from(a.position).unwrap_or_default(),
        role: to_pb!(a.role, pb::AssignmentRole, "ASSIGNMENT_ROLE_"),
        status: to_pb!(a.status, pb::AssignmentStatus, "ASSIGNMENT_STATUS_"),
        trained: a.trained,
        notify_time: a.notified_at.map(timestamp),
        create_time: Some(timestamp(a.created_at)),
        update_time: Some(timestamp(a.updated_at)),
        // What the row keeps of a no-show: the note and when it was recorded. The session missed
        // and who recorded it are kept in the audit entry only (responses::no_show).
        no_show: (a.status == AssignmentStatus::NoShow).then(|| pb::NoShow {
            session_id: String::new(),
            note: a.cancel_reason.clone(),
            recorded_by: None,
            record_time: Some(timestamp(a.updated_at)),
        }),
        // Kept by the draw, the letter and the task: see `assignment_in_context`.
        designated: false,
        response_deadline: None,
        dispatch_letter_id: String::new(),
    }
}

/// An assignment with what its draw, letter and task say about it (GetAssignment).
pub fn assignment_in_context(a: &Assignment, context: &crate::assignment_view::Context) -> pb::Assignment {
    pb::Assignment {
        designated: context.designated,
        dispatch_letter_id: context.dispatch_letter_id.clone(),
        response_deadline: context.response_deadline.map(timestamp),
        ..assignment_to_proto(a)
    }
}

pub fn draw_listing(req: &pb::ListDrawsRequest, visibility: TaskVisibility) -> Result<(DrawFilter, Page), Status> {
    let mut v = FieldViolations::new();
    let page = Page::parse(req.page.as_ref(), "page", |t| DrawId::parse(t).is_some(), &mut v);
    let task_id = match req.task_id.as_str() {
        "" => None,
        raw => {
            let id = TaskId::parse(raw);
            if id.is_none() {
                v.add("task_id", "must be a task id (tsk_...)");
            }
            id
        }
    };
    let status = match req.status {
        0 => None,
        value => from_pb!(value, pb::DrawStatus, "DRAW_STATUS_", DrawStatus, "status", "a draw status", &mut v),
    };
    let bureau = match req.dispatching_bureau {
        0 => None,
        value => {
            let b = Bureau::from_proto(value);
            if b.is_none() {
                v.add("dispatching_bureau", "must be a bureau of D13");
            }
            b
        }
    };
    // DESIGNATION lists the non-random designations (D15); INITIAL and SUPPLEMENTARY the draws.
    let kind = match req.kind {
        0 => None,
        value => from_pb!(value, pb::DrawKind, "DRAW_KIND_", crate::domain::DrawKind, "kind", "a draw kind", &mut v),
    };
    v.check()?;
    Ok((DrawFilter { visibility, task_id, status, kind, bureau }, page))
}

pub fn assignment_listing(
    req: &pb::ListAssignmentsRequest,
    visibility: TaskVisibility,
) -> Result<(AssignmentFilter, Page), Status> {
    let mut v = FieldViolations::new();
    let page = Page::parse(req.page.as_ref(), "page", |t| AssignmentId::parse(t).is_some(), &mut v);
    let task_id = match req.task_id.as_str() {
        "" => None,
        raw => {
            let id = TaskId::parse(raw);
            if id.is_none() {
                v.add("task_id", "must be a task id (tsk_...)");
            }
            id
        }
    };
    if req.task_id.is_empty() && req.expert_id.is_empty() {
        v.add("task_id", "one of task_id and expert_id is required");
    }
    if !req.expert_id.is_empty() && !is_prefixed_id(&req.expert_id, "exp_") {
        v.add("expert_id", "must be an expert id (exp_...)");
    }
    let status = match req.status {
        0 => None,
        value => from_pb!(
            value,
            pb::AssignmentStatus,
            "ASSIGNMENT_STATUS_",
            AssignmentStatus,
            "status",
            "an assignment status the service records so far",
            &mut v
        ),
    };
    if req.session_dates.is_some() {
        v.add("session_dates", "is not supported yet");
    }
    v.check()?;
    let filter = AssignmentFilter {
        visibility,
        task_id,
        expert_id: (!req.expert_id.is_empty()).then(|| req.expert_id.clone()),
        draw_id: None,
        status,
    };
    Ok((filter, page))
}

/// The paths UpdateTask accepts in its mask.
pub const UPDATABLE_TASK_PATHS: [&str; 11] = [
    "title",
    "activity",
    "mode",
    "sessions",
    "team_size",
    "backup_count",
    "specialties_wanted",
    "fund_source",
    "urgent",
    "urgent_reason",
    "exceptions",
];

/// The task named by an UpdateTaskRequest and the paths of its mask: each one of
/// [`UPDATABLE_TASK_PATHS`], none twice, at least one.
pub fn task_update(req: &pb::UpdateTaskRequest) -> Result<(TaskId, Vec<String>), Status> {
    let mut v = FieldViolations::new();
    let id = req.task.as_ref().and_then(|t| TaskId::parse(&t.id));
    if id.is_none() {
        v.add("task.id", "is not a task id (tsk_...)");
    }
    if req.expected_revision < 0 {
        v.add("expected_revision", "must be a revision read, or 0");
    }
    let mut paths: Vec<String> = Vec::new();
    match req.update_mask.as_ref() {
        Some(mask) if !mask.paths.is_empty() => {
            for (i, p) in mask.paths.iter().enumerate() {
                if !UPDATABLE_TASK_PATHS.contains(&p.as_str()) {
                    v.add(
                        format!("update_mask.paths[{i}]"),
                        format!("{p:?} cannot be changed; the paths are {}", UPDATABLE_TASK_PATHS.join(", ")),
                    );
                } else if paths.contains(p) {
                    v.add(format!("update_mask.paths[{i}]"), "is named twice");
                } else {
                    paths.push(p.clone());
                }
            }
        }
        _ => v.add("update_mask", "names at least one field to change"),
    }
    v.check()?;
    Ok((id.expect("recorded as a violation"), paths))
}

/// The task `current` with the fields of `new` named in `paths`, checked as a creation is: a
/// CreateTaskRequest built from the current task, overlaid with the masked fields. Sessions not
/// in the mask keep their ids; the exceptions the city approved stay approved (an update never
/// withdraws the city's decision), and requests in the mask replace the unapproved ones.
pub fn updated_task(current: &Task, new: &pb::Task, paths: &[String]) -> Result<NewTask, Status> {
    let has = |p: &str| paths.iter().any(|x| x == p);
    let now = task_to_proto(current.clone());
    let pick = |p: &str| if has(p) { new } else { &now };
    let strip_sessions = |s: &[pb::TaskSession]| {
        s.iter().map(|x| pb::TaskSession { id: String::new(), ..x.clone() }).collect::<Vec<_>>()
    };
    let requestable = |e: &&pb::TaskException| {
        e.kind == pb::TaskExceptionKind::SmallTeam as i32 || e.kind == pb::TaskExceptionKind::CrossCounty as i32
    };
    let exceptions: Vec<pb::TaskException> = if has("exceptions") {
        new.exceptions.clone()
    } else {
        now.exceptions
            .iter()
            .filter(requestable)
            .map(|e| pb::TaskException {
                kind: e.kind,
                reason: e.reason.clone(),
                reduced_team_size: 0,
                approved: false,
                approved_by: None,
                approve_time: None,
            })
            .collect()
    };
    // Team size 0 in the mask asks for the edition's default; unmasked, the current size stays.
    let team_size = if has("team_size") { (new.team_size != 0).then_some(new.team_size) } else { Some(now.team_size) };
    let urgent_paths = has("urgent") || has("urgent_reason");
    let req = pb::CreateTaskRequest {
        request_id: String::new(),
        dispatching_bureau: now.dispatching_bureau,
        institution_id: now.institution_id.clone(),
        title: pick("title").title.clone(),
        activity: pick("activity").activity.clone(),
        mode: pick("mode").mode,
        origin: now.origin,
        origin_submission_id: now.origin_submission_id.clone(),
        reporter_expert_id: now.reporter_expert_id.clone(),
        sessions: strip_sessions(&pick("sessions").sessions),
        team_size,
        backup_count: Some(pick("backup_count").backup_count),
        specialties_wanted: pick("specialties_wanted").specialties_wanted.clone(),
        fund_source: pick("fund_source").fund_source,
        urgent: if urgent_paths { if has("urgent") { new.urgent } else { now.urgent } } else { now.urgent },
        urgent_reason: if has("urgent_reason") {
            new.urgent_reason.clone()
        } else if has("urgent") && !new.urgent {
            String::new()
        } else {
            now.urgent_reason.clone()
        },
        exceptions,
    };
    // Violations name the task's fields as CreateTask does (`title`, `sessions[0].date`).
    let mut details = new_task(req)?;
    if !has("sessions") {
        details.sessions.clone_from(&current.details.sessions);
    }
    let mut merged: Vec<TaskException> =
        current.details.exceptions.iter().filter(|e| e.approval.is_some()).cloned().collect();
    for e in details.exceptions {
        if !merged.iter().any(|x| x.kind == e.kind) {
            merged.push(e);
        }
    }
    merged.sort_by_key(|e| e.kind.code());
    details.exceptions = merged;
    Ok(details)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tip_off() -> pb::CreateSubmissionRequest {
        pb::CreateSubmissionRequest {
            request_id: "r".into(),
            r#type: pb::SubmissionType::TipOff as i32,
            expert_id: "exp_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f".into(),
            submitting_bureau: 0,
            source_party: pb::SourceParty::Worker as i32,
            institution_id: String::new(),
            subject: "某培训机构虚报培训人数".into(),
            content: "学员反映……".into(),
            attachment_ids: vec![],
            on_behalf: None,
        }
    }

    fn fields(status: &Status) -> Vec<String> {
        use tonic_types::StatusExt;
        status.get_error_details().bad_request().unwrap().field_violations.iter().map(|f| f.field.clone()).collect()
    }

    #[test]
    fn a_tip_off_converts() {
        let s = new_submission(tip_off(), Utc::now()).unwrap();
        assert_eq!(s.kind, SubmissionKind::TipOff);
        assert_eq!(s.source_party, "SOURCE_PARTY_WORKER");
    }

    #[test]
    fn a_received_time_in_the_future_is_refused() {
        let now = Utc::now();
        let req = pb::CreateSubmissionRequest {
            on_behalf: Some(common::OnBehalf {
                channel: common::EntryChannel::Phone as i32,
                received_time: Some(timestamp(now + chrono::Duration::hours(1))),
                note: String::new(),
            }),
            ..tip_off()
        };
        assert_eq!(fields(&new_submission(req, now).unwrap_err()), ["on_behalf.received_time"]);
    }

    #[test]
    fn a_county_report_names_its_county_and_no_expert() {
        let req = pb::CreateSubmissionRequest {
            r#type: pb::SubmissionType::CountyReport as i32,
            submitting_bureau: common::BureauCode::JiangmenCity as i32,
            attachment_ids: vec!["att_x".into()],
            ..tip_off()
        };
        assert_eq!(
            fields(&new_submission(req, Utc::now()).unwrap_err()),
            ["expert_id", "submitting_bureau", "attachment_ids[0]"]
        );
    }
}
