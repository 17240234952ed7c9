//! 公示 (article 7(四), D10), 异议 and 确定任用 (article 7(五)): a batch of at least 7 calendar
//! days warns when it ends on a non-working day; an open objection holds one application while
//! the other is appointed after the period, through recruitment's outbox to the registry.

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use supervision_kit::auth::TokenRequest;
use supervision_proto::{
    common::{Date, DateRange, EntryChannel, FileFormat},
    recruitment::{
        ApplicationStatus, CreatePublicityBatchRequest, DecideAppointmentsRequest, MaterialKind, ObjectionStatus,
        Publication, PublicationChannel, PublicityBatchStatus, PublishPublicityBatchRequest, RecordObjectionRequest,
        RenderPublicityNoticeRequest, ResolveObjectionRequest, ReviewOutcome,
        recruitment_service_client::RecruitmentServiceClient,
    },
};
use testkit::{Backend, Role, on_both_backends, spawn_recruitment};
use tonic::Code;

use crate::applications::{
    Client, ID_A, ID_B, MOBILE_A, admin, applicant, create, profile, published_call, rid, submit, upload,
};
use crate::reviews::{approve_all, conclude, record};

on_both_backends!(an_objection_holds_one_application_while_the_other_is_appointed);

fn pdate(d: NaiveDate) -> Date {
    Date { year: d.year(), month: d.month() as i32, day: d.day() as i32 }
}

/// An application that passed review, entered and submitted by `subject`.
async fn passed(service: &testkit::RunningService, call_id: &str, subject: &str, name: &str, id: &str) -> String {
    let mut me = applicant(service, subject);
    let draft = create(&mut me, call_id, profile(name, id, MOBILE_A)).await;
    let material = me
        .upload_material(upload(&draft.id, MaterialKind::CategoryEvidence, b"%PDF cert".to_vec()))
        .await
        .unwrap()
        .into_inner()
        .material
        .unwrap()
        .id;
    me.submit_application(submit(&draft.id)).await.unwrap();
    let mut reviewer = RecruitmentServiceClient::new(service.as_role(Role::CityReviewer, None));
    reviewer.record_review(record(&draft.id, approve_all(&[material]))).await.unwrap();
    reviewer.conclude_review(conclude(&draft.id, ReviewOutcome::Passed, "")).await.unwrap();
    draft.id
}

fn batch_request(ids: &[String], start: NaiveDate, end: NaiveDate) -> CreatePublicityBatchRequest {
    CreatePublicityBatchRequest {
        request_id: rid(),
        title: "2026 年社会监督专家拟聘人员名单公示".into(),
        application_ids: ids.to_vec(),
        period: Some(DateRange { start: Some(pdate(start)), end: Some(pdate(end)) }),
    }
}

/// A CITY_ADMIN client whose token outlives the clock moving past the publicity.
fn admin_for_a_month(service: &testkit::RunningService) -> Client {
    let token = testkit::identity::token_for(TokenRequest {
        subject: "city_admin-user".into(),
        role: Role::CityAdmin,
        bureau: None,
        expert_id: None,
        ttl: std::time::Duration::from_secs(30 * 86_400),
    });
    RecruitmentServiceClient::new(testkit::with_token(&service.channel, Some(&token)))
}

async fn status_of(client: &mut Client, id: &str) -> i32 {
    let request = supervision_proto::recruitment::GetApplicationRequest { id: id.into() };
    client.get_application(request).await.unwrap().into_inner().application.unwrap().status
}

async fn an_objection_holds_one_application_while_the_other_is_appointed(backend: Backend) {
    let service = spawn_recruitment(backend).await;
    let mut staff = admin(&service);
    let call_id = published_call(&mut staff, -1, 14).await;
    let a = passed(&service, &call_id, "applicant-li", "李明", ID_A).await;
    let b = passed(&service, &call_id, "applicant-wang", "王芳", ID_B).await;
    let ids = vec![a.clone(), b.clone()];

    let today = (chrono::Utc::now() + Duration::hours(8)).date_naive();
    let mut start = today + Duration::days(1);
    while (start + Duration::days(6)).weekday() != Weekday::Sun {
        start += Duration::days(1);
    }
    let end = start + Duration::days(6);
    let err = staff.create_publicity_batch(batch_request(&ids, start, end - Duration::days(1))).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "six days are not enough: {}", err.message());

    let batch =
        staff.create_publicity_batch(batch_request(&ids, start, end)).await.unwrap().into_inner().batch.unwrap();
    assert_eq!((batch.days, batch.status), (7, PublicityBatchStatus::Draft as i32));
    assert!(batch.ends_on_non_working_day, "{end} is a Sunday");
    assert!(!batch.warnings.is_empty());

    let publication = Publication {
        channel: PublicationChannel::OfficialWebsite as i32,
        publish_date: Some(pdate(today)),
        address: "https://hrss.jiangmen.gov.cn/gs/1".into(),
        ..Default::default()
    };
    let published = staff
        .publish_publicity_batch(PublishPublicityBatchRequest {
            request_id: rid(),
            batch_id: batch.id.clone(),
            publications: vec![publication],
        })
        .await
        .unwrap()
        .into_inner()
        .batch
        .unwrap();
    assert_eq!(published.status, PublicityBatchStatus::Open as i32);
    assert_eq!(status_of(&mut staff, &a).await, ApplicationStatus::InPublicity as i32);

    for format in [FileFormat::Html, FileFormat::Text] {
        let file = staff
            .render_publicity_notice(RenderPublicityNoticeRequest { batch_id: batch.id.clone(), format: format as i32 })
            .await
            .unwrap()
            .into_inner()
            .file
            .unwrap();
        let text = String::from_utf8(file.content).unwrap();
        assert!(text.contains("李明") && text.contains(&start.to_string()) && text.contains(&end.to_string()));
        assert!(!text.contains(ID_A) && !text.contains(ID_B), "identity numbers are masked: {text}");
        assert!(!text.contains(MOBILE_A), "no contact details");
    }

    let xlsx = staff
        .render_publicity_notice(RenderPublicityNoticeRequest {
            batch_id: batch.id.clone(),
            format: FileFormat::Xlsx as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .file
        .unwrap();
    assert!(xlsx.file_name.ends_with(".xlsx"), "{}", xlsx.file_name);
    let mut book: calamine::Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(xlsx.content)).unwrap();
    let sheet = calamine::Reader::worksheet_range(&mut book, "公示名单").unwrap();
    let cells: Vec<String> = sheet.rows().flat_map(|r| r.iter().map(|c| c.to_string())).collect();
    assert!(cells.iter().any(|c| c.contains(&start.to_string()) && c.contains(&end.to_string())), "{cells:?}");
    assert!(cells.contains(&"李明".to_owned()) && cells.contains(&"王芳".to_owned()), "{cells:?}");
    assert!(cells.iter().any(|c| c.ends_with(&ID_A[14..]) && c.starts_with('*')), "masked numbers: {cells:?}");
    assert!(cells.iter().all(|c| !c.contains(ID_A) && !c.contains(ID_B) && !c.contains(MOBILE_A)), "{cells:?}");

    let objection = staff
        .record_objection(RecordObjectionRequest {
            request_id: rid(),
            application_id: b.clone(),
            channel: EntryChannel::Phone as i32,
            content: "反映该申请人存在违规行为".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .objection
        .unwrap();
    assert_eq!(objection.status, ObjectionStatus::Open as i32);
    assert_eq!(status_of(&mut staff, &b).await, ApplicationStatus::ObjectionPending as i32);

    let decide =
        |ids: Vec<String>| DecideAppointmentsRequest { request_id: rid(), application_ids: ids, ..Default::default() };
    let err = staff.decide_appointments(decide(vec![a.clone()])).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "not before the publicity ends");

    let days_to_end = (end - today).num_days() + 1;
    let mut staff = admin_for_a_month(&service);
    service.set_clock_offset(days_to_end * 86_400 + 3_600);
    let err = staff.decide_appointments(decide(vec![a.clone(), b.clone()])).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains(&b), "the held application is named: {}", err.message());
    let decisions = staff.decide_appointments(decide(vec![a.clone()])).await.unwrap().into_inner().decisions;
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].application_id, a);
    assert_eq!(status_of(&mut staff, &a).await, ApplicationStatus::AppointmentPending as i32);
    assert_eq!(status_of(&mut staff, &b).await, ApplicationStatus::ObjectionPending as i32);
    let err = staff.decide_appointments(decide(vec![a.clone()])).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "never appointed twice");

    let upheld = staff
        .resolve_objection(ResolveObjectionRequest {
            request_id: rid(),
            objection_id: objection.id.clone(),
            outcome: ObjectionStatus::Upheld as i32,
            findings: "经核实情况属实".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(upheld.application.unwrap().status, ApplicationStatus::Rejected as i32);

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(service.database_url()).await.unwrap();
    let keys: Vec<String> = sqlx::query_scalar("SELECT idempotency_key FROM kit_outbox WHERE method = $1")
        .bind("/supervision.registry.v1.RegistryService/AppointExpert")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(keys, vec![a.clone()], "exactly one AppointExpert, keyed by the application id");
    pool.close().await;
    service.stop().await;
}
