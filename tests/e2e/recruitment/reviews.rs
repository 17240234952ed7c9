//! 资格审核 (article 7(三)): verdicts per condition, category and material; the reviewer is
//! neither the applicant nor whoever entered or submitted the application.

use supervision_proto::{
    common::{EligibilityCondition, EntryChannel, ExpertCategory, OnBehalf},
    recruitment::{
        Application, ApplicationStatus, ConcludeReviewRequest, ListAuditEntriesRequest, MaterialKind,
        RecordReviewRequest, ReviewInput, ReviewOutcome, ReviewTarget, ReviewVerdict,
        recruitment_service_client::RecruitmentServiceClient, review_target::Item,
    },
};
use testkit::{Backend, Role, on_both_backends, spawn_recruitment};
use tonic::Code;

use crate::applications::{
    Client, ID_A, MOBILE_A, admin, applicant, create, create_request, profile, published_call, rid, submit, upload,
    violated_fields,
};

on_both_backends!(
    verdicts_per_item_decide_the_review_and_a_return_is_resubmitted,
    the_reviewer_is_not_who_entered_or_submitted_it,
);

const CONDITIONS: [EligibilityCondition; 4] = [
    EligibilityCondition::Commitment,
    EligibilityCondition::Integrity,
    EligibilityCondition::Competence,
    EligibilityCondition::CleanRecord,
];

fn item(target: Item, verdict: ReviewVerdict, reason: &str) -> ReviewInput {
    ReviewInput { target: Some(ReviewTarget { item: Some(target) }), verdict: verdict as i32, reason: reason.into() }
}

/// Approvals of the four conditions, the technician category and `materials`.
pub(crate) fn approve_all(materials: &[String]) -> Vec<ReviewInput> {
    let mut items: Vec<ReviewInput> =
        CONDITIONS.iter().map(|c| item(Item::Condition(*c as i32), ReviewVerdict::Approved, "")).collect();
    items.push(item(Item::Category(ExpertCategory::Technician as i32), ReviewVerdict::Approved, ""));
    items.extend(materials.iter().map(|m| item(Item::MaterialId(m.clone()), ReviewVerdict::Approved, "")));
    items
}

pub(crate) fn record(application_id: &str, items: Vec<ReviewInput>) -> RecordReviewRequest {
    RecordReviewRequest { request_id: rid(), application_id: application_id.into(), items }
}

pub(crate) fn conclude(application_id: &str, outcome: ReviewOutcome, reason: &str) -> ConcludeReviewRequest {
    ConcludeReviewRequest {
        request_id: rid(),
        application_id: application_id.into(),
        outcome: outcome as i32,
        reason: reason.into(),
    }
}

async fn review(client: &mut Client, request: RecordReviewRequest) -> Application {
    client.record_review(request).await.unwrap().into_inner().application.unwrap()
}

async fn verdicts_per_item_decide_the_review_and_a_return_is_resubmitted(backend: Backend) {
    let service = spawn_recruitment(backend).await;
    let call_id = published_call(&mut admin(&service), -1, 14).await;
    let mut me = applicant(&service, "applicant-li");
    let draft = create(&mut me, &call_id, profile("李明", ID_A, MOBILE_A)).await;
    let blurry = me
        .upload_material(upload(&draft.id, MaterialKind::CategoryEvidence, b"%PDF blurry".to_vec()))
        .await
        .unwrap()
        .into_inner()
        .material
        .unwrap()
        .id;
    me.submit_application(submit(&draft.id)).await.unwrap();

    let mut reviewer = RecruitmentServiceClient::new(service.as_role(Role::CityReviewer, None));
    let err = me.record_review(record(&draft.id, approve_all(&[]))).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "an applicant does not review");
    let bad = vec![
        item(Item::Category(ExpertCategory::SeniorProfessionalTitle as i32), ReviewVerdict::Approved, ""),
        item(Item::Condition(EligibilityCondition::Integrity as i32), ReviewVerdict::Rejected, ""),
    ];
    let err = reviewer.record_review(record(&draft.id, bad)).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["items[1].reason"], "a rejection needs its reason");
    let unclaimed =
        vec![item(Item::Category(ExpertCategory::SeniorProfessionalTitle as i32), ReviewVerdict::Approved, "")];
    let err = reviewer.record_review(record(&draft.id, unclaimed)).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["items[0].target"], "only what the application claims is reviewed");

    let mut items = approve_all(&[]);
    items.push(item(Item::MaterialId(blurry.clone()), ReviewVerdict::Returned, "证书扫描件不清晰，请重新上传"));
    let under_review = review(&mut reviewer, record(&draft.id, items)).await;
    assert_eq!(under_review.status, ApplicationStatus::UnderReview as i32);
    assert_eq!(under_review.review_items.len(), 6);
    assert!(under_review.review_items.iter().all(|i| i.submission_number == 1));
    let err = reviewer.conclude_review(conclude(&draft.id, ReviewOutcome::Passed, "")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "a returned material keeps the review from passing");
    assert!(err.message().contains(&blurry), "{}", err.message());
    let err = reviewer.conclude_review(conclude(&draft.id, ReviewOutcome::Returned, "")).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["reason"]);
    let returned = reviewer
        .conclude_review(conclude(&draft.id, ReviewOutcome::Returned, "请补正技师证书"))
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    assert_eq!(returned.status, ApplicationStatus::Returned as i32);
    assert_eq!(returned.conclusion.as_ref().unwrap().reason, "请补正技师证书");

    let sharp = me
        .upload_material(upload(&draft.id, MaterialKind::CategoryEvidence, b"%PDF sharp".to_vec()))
        .await
        .unwrap()
        .into_inner()
        .material
        .unwrap()
        .id;
    let resubmitted = me.submit_application(submit(&draft.id)).await.unwrap().into_inner().application.unwrap();
    assert_eq!((resubmitted.status, resubmitted.submission_count), (ApplicationStatus::Submitted as i32, 2));
    assert!(resubmitted.conclusion.is_none(), "a resubmission awaits a new conclusion");

    let earlier = approve_all(&[]);
    review(&mut reviewer, record(&draft.id, earlier)).await;
    let err = reviewer.conclude_review(conclude(&draft.id, ReviewOutcome::Passed, "")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "every material of this submission is verified first");
    review(&mut reviewer, record(&draft.id, approve_all(&[blurry, sharp]))).await;
    let passed = reviewer
        .conclude_review(conclude(&draft.id, ReviewOutcome::Passed, ""))
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    assert_eq!(passed.status, ApplicationStatus::PassedReview as i32);
    assert_eq!(passed.conclusion.unwrap().reviewer.unwrap().subject, "city_reviewer-user");

    let mut auditor = RecruitmentServiceClient::new(service.as_role(Role::Auditor, None));
    let entries = auditor
        .list_audit_entries(ListAuditEntriesRequest { entity_id: draft.id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["create", "submit", "review", "conclude_review", "submit", "review", "review", "conclude_review"]
    );
    service.stop().await;
}

async fn the_reviewer_is_not_who_entered_or_submitted_it(backend: Backend) {
    let service = spawn_recruitment(backend).await;
    let mut staff = admin(&service);
    let call_id = published_call(&mut staff, -1, 14).await;
    let received = chrono::Utc::now() - chrono::Duration::hours(1);
    let on_behalf = OnBehalf {
        channel: EntryChannel::InPerson as i32,
        received_time: Some(prost_types::Timestamp { seconds: received.timestamp(), nanos: 0 }),
        note: "窗口收件".into(),
    };
    let mut request = create_request(&call_id, profile("李明", ID_A, MOBILE_A));
    request.on_behalf = Some(on_behalf.clone());
    let entered = staff.create_application(request).await.unwrap().into_inner().application.unwrap();
    let evidence = staff
        .upload_material(upload(&entered.id, MaterialKind::CategoryEvidence, b"%PDF".to_vec()))
        .await
        .unwrap()
        .into_inner()
        .material
        .unwrap()
        .id;
    let signed = staff
        .upload_material(upload(&entered.id, MaterialKind::SignedCommitment, b"%PDF signed".to_vec()))
        .await
        .unwrap()
        .into_inner()
        .material
        .unwrap()
        .id;
    let mut by_staff = submit(&entered.id);
    by_staff.on_behalf = Some(on_behalf);
    staff.submit_application(by_staff).await.unwrap();

    let err = staff.record_review(record(&entered.id, approve_all(&[]))).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "who entered and submitted it does not review it");
    let mut colleague = RecruitmentServiceClient::new(service.as_user("city-admin-2", Role::CityAdmin, None));
    review(&mut colleague, record(&entered.id, approve_all(&[evidence, signed]))).await;
    let err = staff.conclude_review(conclude(&entered.id, ReviewOutcome::Passed, "")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "nor concludes it");
    let passed = colleague
        .conclude_review(conclude(&entered.id, ReviewOutcome::Passed, ""))
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    assert_eq!(passed.status, ApplicationStatus::PassedReview as i32);
    let err = colleague.conclude_review(conclude(&entered.id, ReviewOutcome::Rejected, "重复")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "a concluded review is not concluded again");
    service.stop().await;
}
