//! proto <-> domain. Every problem with a request becomes a field violation naming the field.

use chrono::{DateTime, Utc};
use supervision_kit::{
    Bureau, FieldViolations, Page,
    convert::{long_text, on_behalf, optional_text, required_enum, required_text, timestamp},
    vocab::is_prefixed_id,
};
use supervision_proto::{common, dispatch as pb};
use tonic::Status;

use crate::domain::{
    NewSubmission, Submission, SubmissionFilter, SubmissionId, SubmissionKind, SubmissionStatus, Submitter, Visibility,
};

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
    for (i, _) in req.attachment_ids.iter().enumerate() {
        // Attachments are uploaded with UploadAttachment (issue 7); until then none exists.
        v.add(format!("attachment_ids[{i}]"), "names no uploaded attachment");
    }
    v.check()?;
    let (Some(kind), Some(submitter)) = (kind, submitter) else { unreachable!("recorded as violations") };
    Ok(NewSubmission { kind, submitter, source_party, institution_id: req.institution_id, subject, content })
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
        attachment_ids: Vec::new(),
        status: status_to_proto(s.status) as i32,
        copied_bureaus: Vec::new(),
        handler: String::new(),
        answer: String::new(),
        follow_up_task_id: String::new(),
        close_note: String::new(),
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
