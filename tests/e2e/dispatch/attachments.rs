//! Attachments of reports and submissions: PDF, JPEG or PNG up to 10 MiB, the media type checked
//! against the content, stored with its SHA-256; uploaded by the expert or staff for them while
//! the assignment is accepted (or the submission open); read by whoever sees the owner.

use sha2::{Digest, Sha256};
use supervision_proto::dispatch::{
    GetAttachmentRequest, UploadAttachmentRequest, dispatch_service_client::DispatchServiceClient,
    upload_attachment_request::Owner,
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

on_both_backends!(a_reports_file_is_stored_with_its_hash_and_read_by_who_sees_the_report, uploads_are_checked);

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
