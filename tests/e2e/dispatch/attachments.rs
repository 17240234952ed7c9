//! Attachments of reports and submissions: PDF, JPEG or PNG up to 10 MiB, the media type checked
//! against the content, stored with its SHA-256; uploaded by the expert or staff for them while
//! the assignment is accepted (or the submission open); read by whoever sees the owner.

use sha2::{Digest, Sha256};
use supervision_proto::dispatch::{
    CreateSubmissionRequest, GetAttachmentRequest, UploadAttachmentRequest,
    dispatch_service_client::DispatchServiceClient, upload_attachment_request::Owner,
};
use testkit::{Backend, Bureau, Role, on_both_backends};
use tonic::Code;
use tonic_types::StatusExt;

use crate::{
    draws::user,
    responses::{accept, drawn, expert},
    submissions::tip_off,
    tasks::reason,
};

on_both_backends!(
    a_reports_file_is_stored_with_its_hash_and_read_by_who_sees_the_report,
    uploads_are_checked,
    a_report_names_only_files_uploaded_for_its_assignment,
    a_submission_names_only_files_its_submitter_may_see,
);

fn pdf(extra: &str) -> Vec<u8> {
    format!("%PDF-1.7\n% 签到表 {extra}\n%%EOF\n").into_bytes()
}

fn upload(request_id: &str, owner: Owner, media_type: &str, content: Vec<u8>) -> UploadAttachmentRequest {
    UploadAttachmentRequest {
        request_id: request_id.into(),
        owner: Some(owner),
        file_name: "签到表.pdf".into(),
        media_type: media_type.into(),
        content,
    }
}

fn fields(status: &tonic::Status) -> Vec<String> {
    let details = status.get_error_details();
    details.bad_request().map(|b| b.field_violations.iter().map(|f| f.field.clone()).collect()).unwrap_or_default()
}

async fn a_reports_file_is_stored_with_its_hash_and_read_by_who_sees_the_report(backend: Backend) {
    let d = drawn(backend).await;
    let p0 = &d.primaries[0];
    let mut mine = expert(&d.dispatch, &p0.expert_id);
    mine.respond_to_assignment(accept("acc-0", &p0.id)).await.unwrap();
    let content = pdf("一");
    let request = upload("up-1", Owner::AssignmentId(p0.id.clone()), "application/pdf", content.clone());
    let stored = mine.upload_attachment(request.clone()).await.unwrap().into_inner().attachment.unwrap();
    assert!(stored.id.starts_with("att_"));
    assert_eq!(stored.sha256, hex::encode(Sha256::digest(&content)));
    assert_eq!(stored.size_bytes, i64::try_from(content.len()).unwrap());
    assert_eq!((stored.file_name.as_str(), stored.media_type.as_str()), ("签到表.pdf", "application/pdf"));
    // A retry answers the same attachment.
    assert_eq!(mine.upload_attachment(request).await.unwrap().into_inner().attachment.unwrap(), stored);

    let get = || GetAttachmentRequest { id: stored.id.clone() };
    let read = mine.get_attachment(get()).await.unwrap().into_inner();
    assert_eq!((read.attachment.unwrap(), read.content), (stored.clone(), content.clone()));
    // Staff of the dispatching bureau enter files for the expert (D16) and read them.
    let mut operator = user(&d.dispatch, "operator-a");
    assert_eq!(operator.get_attachment(get()).await.unwrap().into_inner().content, content);
    let png = b"\x89PNG\r\n\x1a\nrest".to_vec();
    let by_staff = upload("up-2", Owner::AssignmentId(p0.id.clone()), "image/png", png);
    operator.upload_attachment(by_staff).await.unwrap();
    // Others do not learn it exists.
    let mut other_expert = expert(&d.dispatch, &d.primaries[1].expert_id);
    assert_eq!(other_expert.get_attachment(get()).await.unwrap_err().code(), Code::NotFound);
    let mut jianghai = DispatchServiceClient::new(d.dispatch.as_role(Role::CountyOperator, Some(Bureau::Jianghai)));
    assert_eq!(jianghai.get_attachment(get()).await.unwrap_err().code(), Code::NotFound);
    let unknown = GetAttachmentRequest { id: format!("att_{}", "0".repeat(32)) };
    assert_eq!(mine.get_attachment(unknown).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(
        mine.get_attachment(GetAttachmentRequest { id: "x".into() }).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    // A tip-off's evidence: the expert who made it and the city read it, a county does not.
    let tip = mine.create_submission(tip_off("tip-1", &p0.expert_id)).await.unwrap().into_inner().submission.unwrap();
    let jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3];
    let evidence = mine
        .upload_attachment(upload("up-3", Owner::SubmissionId(tip.id.clone()), "image/jpeg", jpeg.clone()))
        .await
        .unwrap()
        .into_inner()
        .attachment
        .unwrap();
    let mut city = DispatchServiceClient::new(d.dispatch.as_role(Role::CityReviewer, None));
    let got = city.get_attachment(GetAttachmentRequest { id: evidence.id.clone() }).await.unwrap().into_inner();
    assert_eq!(got.content, jpeg);
    let err = operator.get_attachment(GetAttachmentRequest { id: evidence.id }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

async fn uploads_are_checked(backend: Backend) {
    let d = drawn(backend).await;
    let (p0, p1) = (&d.primaries[0], &d.primaries[1]);
    let mut mine = expert(&d.dispatch, &p0.expert_id);
    mine.respond_to_assignment(accept("acc-0", &p0.id)).await.unwrap();
    let owner = || Owner::AssignmentId(p0.id.clone());

    let err = mine.upload_attachment(upload("u-1", owner(), "image/png", pdf("x"))).await.unwrap_err();
    assert_eq!((err.code(), fields(&err)), (Code::InvalidArgument, vec!["content".to_owned()]), "a PDF is not a PNG");
    let err = mine.upload_attachment(upload("u-2", owner(), "text/plain", b"hello".to_vec())).await.unwrap_err();
    assert_eq!(fields(&err), vec!["media_type"]);
    let err = mine.upload_attachment(upload("u-3", owner(), "application/pdf", Vec::new())).await.unwrap_err();
    assert_eq!(fields(&err), vec!["content"]);
    let mut big = pdf("big");
    big.resize(10 * 1024 * 1024 + 1, b' ');
    let err = mine.upload_attachment(upload("u-4", owner(), "application/pdf", big)).await.unwrap_err();
    assert_eq!((err.code(), fields(&err)), (Code::InvalidArgument, vec!["content".to_owned()]));
    let mut exactly = pdf("max");
    exactly.resize(10 * 1024 * 1024, b' ');
    let stored = mine.upload_attachment(upload("u-5", owner(), "application/pdf", exactly)).await.unwrap();
    assert_eq!(stored.into_inner().attachment.unwrap().size_bytes, 10 * 1024 * 1024);
    let mut path = upload("u-6", owner(), "application/pdf", pdf("p"));
    path.file_name = "../etc/passwd".into();
    assert_eq!(fields(&mine.upload_attachment(path).await.unwrap_err()), vec!["file_name"]);
    let mut none = upload("u-7", owner(), "application/pdf", pdf("n"));
    none.owner = None;
    assert_eq!(fields(&mine.upload_attachment(none).await.unwrap_err()), vec!["owner"]);

    // Only the assignment's expert (or staff who manage it), and only once it is accepted.
    let err = mine
        .upload_attachment(upload("u-8", Owner::AssignmentId(p1.id.clone()), "application/pdf", pdf("o")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let mut p1_client = expert(&d.dispatch, &p1.expert_id);
    let err = p1_client
        .upload_attachment(upload("u-9", Owner::AssignmentId(p1.id.clone()), "application/pdf", pdf("w")))
        .await
        .unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "ASSIGNMENT_NOT_REPORTABLE"));
    // Roles without the right: an auditor reads, never uploads.
    let mut auditor = DispatchServiceClient::new(d.dispatch.as_role(Role::Auditor, None));
    let err = auditor.upload_attachment(upload("u-10", owner(), "application/pdf", pdf("a"))).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

/// Uploads a PDF for `assignment` with `client`; its id.
async fn uploaded(client: &mut DispatchServiceClient<testkit::AuthedChannel>, key: &str, assignment: &str) -> String {
    let request = upload(key, Owner::AssignmentId(assignment.to_owned()), "application/pdf", pdf(key));
    client.upload_attachment(request).await.unwrap().into_inner().attachment.unwrap().id
}

async fn a_report_names_only_files_uploaded_for_its_assignment(backend: Backend) {
    use supervision_proto::{
        common::{Date, HalfDay, TimeOfDay},
        dispatch::{
            AcceptReportRequest, CorrectReportRequest, GetAssignmentRequest, GetReportRequest,
            RecordWorkedSessionsRequest, ReportContent, ReportItem, SubmitReportRequest, WorkedSession,
        },
    };
    let d = drawn(backend).await;
    let (p0, p1) = (&d.primaries[0], &d.primaries[1]);
    let mut mine = expert(&d.dispatch, &p0.expert_id);
    let mut theirs = expert(&d.dispatch, &p1.expert_id);
    mine.respond_to_assignment(accept("acc-0", &p0.id)).await.unwrap();
    theirs.respond_to_assignment(accept("acc-1", &p1.id)).await.unwrap();
    crate::responses::clock_at(&d.dispatch, (2026, 6, 8, 8, 0));
    let sheet = uploaded(&mut mine, "up-sheet", &p0.id).await;
    let photo = uploaded(&mut mine, "up-photo", &p0.id).await;
    let others = uploaded(&mut theirs, "up-other", &p1.id).await;
    let sessions = RecordWorkedSessionsRequest {
        request_id: "ws-0".into(),
        assignment_id: p0.id.clone(),
        sessions: vec![WorkedSession {
            task_session_id: String::new(),
            date: Some(Date { year: 2026, month: 6, day: 8 }),
            half_day: HalfDay::Am as i32,
            start_time: Some(TimeOfDay { hours: 9, minutes: 0 }),
            minutes: 180,
            note: String::new(),
        }],
        on_behalf: None,
    };
    mine.record_worked_sessions(sessions).await.unwrap();
    let content = |violation: &str, others: Vec<String>| ReportContent {
        findings: "考核按规程进行。".into(),
        violations: vec![ReportItem {
            description: "签到表与实到人数不符".into(),
            attachment_ids: vec![violation.into()],
        }],
        attachment_ids: others,
        ..Default::default()
    };
    let submit = |key: &str, content: ReportContent| SubmitReportRequest {
        request_id: key.into(),
        assignment_id: p0.id.clone(),
        content: Some(content),
        on_behalf: None,
    };

    // Another assignment's file, an unknown one and a malformed one are refused field by field,
    // and no report is made.
    let unknown = format!("att_{}", "0".repeat(32));
    let err = mine.submit_report(submit("rep-bad", content(&others, vec![unknown]))).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(fields(&err), ["content.violations[0].attachment_ids[0]", "content.attachment_ids[0]"]);
    let err = mine.submit_report(submit("rep-malformed", content(&sheet, vec!["att_x".into()]))).await.unwrap_err();
    assert_eq!((err.code(), fields(&err)), (Code::InvalidArgument, vec!["content.attachment_ids[0]".to_owned()]));
    let read = mine.get_assignment(GetAssignmentRequest { id: p0.id.clone() }).await.unwrap().into_inner();
    assert_eq!(read.assignment.unwrap().report_id, "", "nothing was submitted");

    // The files uploaded for the assignment are accepted, a finding's and the report's own.
    let good = content(&sheet, vec![photo.clone(), sheet.clone()]);
    let report = mine.submit_report(submit("rep-good", good.clone())).await.unwrap().into_inner().report.unwrap();
    assert_eq!(report.content.as_ref(), Some(&good));
    let mut operator = user(&d.dispatch, "operator-a");
    let stored = operator.get_report(GetReportRequest { id: report.id.clone() }).await.unwrap().into_inner();
    assert_eq!(stored.report.unwrap().content, Some(good.clone()));

    // A correction is held to the same rule.
    let accept_report =
        AcceptReportRequest { request_id: "acc-rep".into(), report_id: report.id.clone(), note: String::new() };
    let accepted = operator.accept_report(accept_report).await.unwrap().into_inner().report.unwrap();
    let correct = |key: &str, content: ReportContent| CorrectReportRequest {
        request_id: key.into(),
        report_id: report.id.clone(),
        content: Some(content),
        sessions: vec![],
        update_mask: Some(prost_types::FieldMask { paths: vec!["content".into()] }),
        reason: "补充证据".into(),
    };
    let err = operator.correct_report(correct("cor-bad", content(&sheet, vec![others.clone()]))).await.unwrap_err();
    assert_eq!((err.code(), fields(&err)), (Code::InvalidArgument, vec!["content.attachment_ids[0]".to_owned()]));
    let unchanged = operator.get_report(GetReportRequest { id: report.id.clone() }).await.unwrap().into_inner();
    assert_eq!(unchanged.report.unwrap(), accepted, "the refused correction changed nothing");
    let corrected = operator.correct_report(correct("cor-good", content(&photo, vec![]))).await.unwrap();
    let corrected = corrected.into_inner().report.unwrap();
    assert_eq!(corrected.content.unwrap().violations[0].attachment_ids, [photo]);
}

async fn a_submission_names_only_files_its_submitter_may_see(backend: Backend) {
    use supervision_proto::dispatch::{GetSubmissionRequest, ListSubmissionsRequest};
    let d = drawn(backend).await;
    let (p0, p1) = (&d.primaries[0], &d.primaries[1]);
    let mut mine = expert(&d.dispatch, &p0.expert_id);
    let mut theirs = expert(&d.dispatch, &p1.expert_id);
    mine.respond_to_assignment(accept("acc-0", &p0.id)).await.unwrap();
    theirs.respond_to_assignment(accept("acc-1", &p1.id)).await.unwrap();
    let evidence = uploaded(&mut mine, "up-mine", &p0.id).await;
    let others = uploaded(&mut theirs, "up-theirs", &p1.id).await;

    // Another expert's file and an unknown one get the same answer, and nothing is recorded.
    let named =
        |key: &str, ids: Vec<String>| CreateSubmissionRequest { attachment_ids: ids, ..tip_off(key, &p0.expert_id) };
    let unknown = format!("att_{}", "0".repeat(32));
    let err = mine.create_submission(named("tip-bad", vec![evidence.clone(), others, unknown])).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(fields(&err), ["attachment_ids[1]", "attachment_ids[2]"]);
    let listed = mine.list_submissions(ListSubmissionsRequest::default()).await.unwrap().into_inner();
    assert!(listed.submissions.is_empty(), "{listed:?}");

    // The expert's own file is kept with the submission and read back.
    let made = mine.create_submission(named("tip-good", vec![evidence.clone()])).await.unwrap();
    let made = made.into_inner().submission.unwrap();
    assert_eq!(made.attachment_ids, std::slice::from_ref(&evidence));
    let mut city = DispatchServiceClient::new(d.dispatch.as_role(Role::CityReviewer, None));
    let read = city.get_submission(GetSubmissionRequest { id: made.id.clone() }).await.unwrap().into_inner();
    assert_eq!(read.submission.unwrap().attachment_ids, std::slice::from_ref(&evidence));
    // The city, who sees the file's assignment, reads the evidence the submission names.
    let got = city.get_attachment(GetAttachmentRequest { id: evidence }).await.unwrap().into_inner();
    assert_eq!(got.content, pdf("up-mine"));
}
