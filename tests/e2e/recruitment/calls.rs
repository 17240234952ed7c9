//! Drafting and reading recruitment calls (article 7(一)) through auth, idempotency and audit.

use chrono::Datelike;
use supervision_proto::{
    common::{Date, ExpertCategory, PageRequest, SpecialtyCode},
    recruitment::{
        CallStatus, CancelCallRequest, CloseCallRequest, CreateCallRequest, GetAuditHeadRequest,
        GetCallComplianceRequest, GetCallRequest, ListAuditEntriesRequest, ListCallsRequest, PublicationChannel,
        RecordCallPublicationRequest, recruitment_service_client::RecruitmentServiceClient,
    },
};
use testkit::{AuthedChannel, Backend, Bureau, Role, RunningService, on_both_backends, spawn_recruitment};
use tonic::Code;
use tonic_types::StatusExt;

on_both_backends!(
    a_drafted_call_is_read_back_and_audited,
    a_retried_draft_is_one_call,
    a_bad_call_is_refused_field_by_field,
    only_the_city_bureau_drafts_and_drafts_stay_internal,
    calls_list_newest_first_by_year,
    publication_makes_a_call_public_and_compliance_counts_it,
    only_drafts_are_cancelled_and_only_published_calls_closed,
);

/// Today in Asia/Shanghai, as the service counts days.
pub fn shanghai_today() -> chrono::NaiveDate {
    (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive()
}

pub fn date(d: chrono::NaiveDate) -> Date {
    use chrono::Datelike;
    Date { year: d.year(), month: d.month() as i32, day: d.day() as i32 }
}

pub fn publication(request_id: &str, call_id: &str, channel: PublicationChannel) -> RecordCallPublicationRequest {
    RecordCallPublicationRequest {
        request_id: request_id.into(),
        call_id: call_id.into(),
        channel: channel as i32,
        publish_date: Some(date(shanghai_today())),
        address: "https://hrss.jiangmen.gov.cn/tzgg/2026-zhengji.html".into(),
    }
}

fn client(service: &RunningService, role: Role, bureau: Option<Bureau>) -> RecruitmentServiceClient<AuthedChannel> {
    RecruitmentServiceClient::new(service.as_role(role, bureau))
}

pub fn call(request_id: &str, year: i32, title: &str) -> CreateCallRequest {
    let start = chrono::Utc::now();
    let ts = |t: chrono::DateTime<chrono::Utc>| prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 };
    CreateCallRequest {
        request_id: request_id.into(),
        year,
        title: title.into(),
        body: "现面向社会公开征集职业技能培训评价社会监督专家。\n报名时间见下。".into(),
        categories_sought: vec![ExpertCategory::Technician as i32, ExpertCategory::Educator as i32],
        specialties_sought: vec![SpecialtyCode { code: "6-18-01".into(), name: String::new() }],
        industries_sought: vec!["制造业".into()],
        application_start_time: Some(ts(start)),
        application_end_time: Some(ts(start + chrono::Duration::days(15))),
        required_materials: vec![],
    }
}

async fn a_drafted_call_is_read_back_and_audited(backend: Backend) {
    let service = spawn_recruitment(backend).await;
    let mut admin = client(&service, Role::CityAdmin, None);
    let created =
        admin.create_call(call("c-1", 2026, "2026 年第二批征集通知")).await.unwrap().into_inner().call.unwrap();
    assert!(created.id.starts_with("cal_"));
    assert_eq!(created.status, CallStatus::Draft as i32);
    assert_eq!(created.created_by.as_ref().unwrap().subject, "city_admin-user");

    let read = admin.get_call(GetCallRequest { id: created.id.clone() }).await.unwrap().into_inner().call.unwrap();
    assert_eq!(read, created);

    let mut auditor = client(&service, Role::Auditor, None);
    let head = auditor.get_audit_head(GetAuditHeadRequest {}).await.unwrap().into_inner().head.unwrap();
    assert_eq!(head.sequence, 1);
    let entries = auditor.list_audit_entries(ListAuditEntriesRequest::default()).await.unwrap().into_inner().entries;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].entity_id, created.id);
    assert_eq!(entries[0].request_id, "c-1");
    assert_eq!(entries[0].entry_hash, head.entry_hash);
    service.stop().await;
}

async fn a_retried_draft_is_one_call(backend: Backend) {
    let service = spawn_recruitment(backend).await;
    let mut admin = client(&service, Role::CityAdmin, None);
    // One request sent twice: its window times must not be recomputed between the sends.
    let request = call("same", 2026, "征集通知");
    let first = admin.create_call(request.clone()).await.unwrap().into_inner();
    let again = admin.create_call(request).await.unwrap().into_inner();
    assert_eq!(first, again);
    let err = admin.create_call(call("same", 2026, "另一份通知")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let listed = admin.list_calls(ListCallsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.calls.len(), 1);
    service.stop().await;
}

async fn a_bad_call_is_refused_field_by_field(backend: Backend) {
    let service = spawn_recruitment(backend).await;
    let mut admin = client(&service, Role::CityAdmin, None);
    let mut bad = call("bad", 1900, "");
    bad.specialties_sought[0].code = "not-a-code".into();
    bad.application_end_time = bad.application_start_time;
    let err = admin.create_call(bad).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields: Vec<String> =
        err.get_error_details().bad_request().unwrap().field_violations.iter().map(|f| f.field.clone()).collect();
    assert_eq!(fields, ["year", "title", "specialties_sought[0].code", "application_end_time"]);
    assert!(admin.list_calls(ListCallsRequest::default()).await.unwrap().into_inner().calls.is_empty());
    service.stop().await;
}

async fn only_the_city_bureau_drafts_and_drafts_stay_internal(backend: Backend) {
    let service = spawn_recruitment(backend).await;
    let err = client(&service, Role::CountyOperator, Some(Bureau::Kaiping))
        .create_call(call("x", 2026, "县级征集"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "article 4: recruitment is the city bureau's");

    let created = client(&service, Role::CityAdmin, None)
        .create_call(call("y", 2026, "征集通知"))
        .await
        .unwrap()
        .into_inner()
        .call
        .unwrap();
    let mut applicant = client(&service, Role::Applicant, None);
    let err = applicant.get_call(GetCallRequest { id: created.id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "a draft is not public");
    assert!(applicant.list_calls(ListCallsRequest::default()).await.unwrap().into_inner().calls.is_empty());
    let mut county = client(&service, Role::CountyOperator, Some(Bureau::Kaiping));
    assert!(county.list_calls(ListCallsRequest::default()).await.unwrap().into_inner().calls.is_empty());
    let mut reviewer = client(&service, Role::CityReviewer, None);
    assert_eq!(reviewer.list_calls(ListCallsRequest::default()).await.unwrap().into_inner().calls.len(), 1);
    service.stop().await;
}

async fn calls_list_newest_first_by_year(backend: Backend) {
    let service = spawn_recruitment(backend).await;
    let mut admin = client(&service, Role::CityAdmin, None);
    let mut ids = Vec::new();
    for (i, year) in [2025, 2026, 2026, 2026].into_iter().enumerate() {
        let created = admin.create_call(call(&format!("r{i}"), year, &format!("通知{i}"))).await.unwrap();
        ids.push((year, created.into_inner().call.unwrap().id));
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = admin
            .list_calls(ListCallsRequest {
                page: Some(PageRequest { page_size: 2, page_token: token }),
                year: 2026,
                status: 0,
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.calls.into_iter().map(|c| c.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let expected: Vec<String> = ids.iter().rev().filter(|(y, _)| *y == 2026).map(|(_, id)| id.clone()).collect();
    assert_eq!(seen, expected);
    service.stop().await;
}

async fn publication_makes_a_call_public_and_compliance_counts_it(backend: Backend) {
    let service = spawn_recruitment(backend).await;
    let mut admin = client(&service, Role::CityAdmin, None);
    let year = shanghai_today().year();
    let first = admin.create_call(call("c1", year, "第一批")).await.unwrap().into_inner().call.unwrap();
    let second = admin.create_call(call("c2", year, "第二批")).await.unwrap().into_inner().call.unwrap();
    let compliance = |admin: &mut RecruitmentServiceClient<AuthedChannel>| {
        let mut admin = admin.clone();
        async move { admin.get_call_compliance(GetCallComplianceRequest { year }).await.unwrap().into_inner() }
    };
    assert_eq!(compliance(&mut admin).await.published_calls, 0, "drafts do not count");

    let request = publication("p1", &first.id, PublicationChannel::WechatOfficialAccount);
    let published = admin.record_call_publication(request.clone()).await.unwrap().into_inner().call.unwrap();
    assert_eq!(published.status, CallStatus::Published as i32);
    assert!(published.edition_number >= 1, "the edition in force is stamped");
    assert_eq!(published.publications.len(), 1);
    assert_eq!(published.publications[0].recorded_by.as_ref().unwrap().subject, "city_admin-user");
    let again = admin.record_call_publication(request).await.unwrap().into_inner().call.unwrap();
    assert_eq!(again, published, "a retried publication is recorded once");
    let website = publication("p2", &first.id, PublicationChannel::OfficialWebsite);
    let twice = admin.record_call_publication(website).await.unwrap().into_inner().call.unwrap();
    assert_eq!(twice.publications.len(), 2);
    assert_eq!(twice.edition_number, published.edition_number);

    let mut applicant = client(&service, Role::Applicant, None);
    let seen = applicant.get_call(GetCallRequest { id: first.id.clone() }).await.unwrap().into_inner().call.unwrap();
    assert_eq!(seen.publications.len(), 2, "a published call is public, with where it appeared");
    assert_eq!(applicant.list_calls(ListCallsRequest::default()).await.unwrap().into_inner().calls.len(), 1);

    let one = compliance(&mut admin).await;
    assert_eq!((one.published_calls, one.required_calls, one.met), (1, 2, false), "two channels count once (A6)");
    assert_eq!(one.call_ids, vec![first.id.clone()]);
    admin.record_call_publication(publication("p3", &second.id, PublicationChannel::NewsMedia)).await.unwrap();
    let two = compliance(&mut admin).await;
    assert_eq!((two.published_calls, two.met), (2, true));
    assert!(two.warnings.is_empty());

    let mut future = publication("p4", &second.id, PublicationChannel::NewsMedia);
    future.publish_date = Some(date(shanghai_today() + chrono::Duration::days(2)));
    let err = admin.record_call_publication(future).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "a publication is recorded once it appeared");
    let err = client(&service, Role::CityReviewer, None)
        .get_call_compliance(GetCallComplianceRequest { year: 1990 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let mut auditor = client(&service, Role::Auditor, None);
    let entries = auditor
        .list_audit_entries(ListAuditEntriesRequest { entity_id: first.id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["create", "publish", "publish"]);
    service.stop().await;
}

async fn only_drafts_are_cancelled_and_only_published_calls_closed(backend: Backend) {
    let service = spawn_recruitment(backend).await;
    let mut admin = client(&service, Role::CityAdmin, None);
    let draft = admin.create_call(call("d", 2026, "草稿")).await.unwrap().into_inner().call.unwrap();
    let published = admin.create_call(call("p", 2026, "已发布")).await.unwrap().into_inner().call.unwrap();
    admin
        .record_call_publication(publication("pub", &published.id, PublicationChannel::OfficialWebsite))
        .await
        .unwrap();

    let close = |id: &str, rid: &str| CloseCallRequest {
        request_id: rid.into(),
        call_id: id.into(),
        reason: "名额已满".into(),
    };
    let cancel = |id: &str, rid: &str| CancelCallRequest {
        request_id: rid.into(),
        call_id: id.into(),
        reason: "重新起草".into(),
    };
    assert_eq!(admin.close_call(close(&draft.id, "x1")).await.unwrap_err().code(), Code::FailedPrecondition);
    assert_eq!(admin.cancel_call(cancel(&published.id, "x2")).await.unwrap_err().code(), Code::FailedPrecondition);
    let mut no_reason = cancel(&draft.id, "x3");
    no_reason.reason.clear();
    assert_eq!(admin.cancel_call(no_reason).await.unwrap_err().code(), Code::InvalidArgument);

    let cancelled = admin.cancel_call(cancel(&draft.id, "c")).await.unwrap().into_inner().call.unwrap();
    assert_eq!(cancelled.status, CallStatus::Cancelled as i32);
    let closed = admin.close_call(close(&published.id, "k")).await.unwrap().into_inner().call.unwrap();
    assert_eq!(closed.status, CallStatus::Closed as i32);
    let err = admin
        .record_call_publication(publication("late", &published.id, PublicationChannel::NewsMedia))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "a closed call takes no more publications");

    let err = client(&service, Role::CityReviewer, None).close_call(close(&published.id, "r")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let mut applicant = client(&service, Role::Applicant, None);
    let err = applicant.get_call(GetCallRequest { id: cancelled.id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "a cancelled draft never became public");
    service.stop().await;
}
