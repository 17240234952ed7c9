//! Experts' feedback, tip-offs and violation reports, and counties' reports (article 8, D16, D21).

use supervision_proto::{
    common::{BureauCode, EntryChannel, OnBehalf},
    dispatch::{
        AnswerSubmissionRequest, AssignSubmissionRequest, CloseSubmissionRequest, CreateSubmissionRequest,
        GetSubmissionRequest, ListSubmissionsRequest, SubmissionStatus, SubmissionType,
        dispatch_service_client::DispatchServiceClient,
    },
};
use testkit::{
    AuthedChannel, Backend, Bureau, Role, RunningService,
    identity::{EXPERT_ID, expert_token},
    on_both_backends, spawn_dispatch, with_token,
};
use tonic::Code;
use tonic_types::StatusExt;

on_both_backends!(
    an_expert_reports_a_tip_off_that_only_the_city_and_they_see,
    staff_enter_a_submission_only_with_how_they_received_it,
    a_county_reports_to_the_city_for_itself_only,
    a_retried_submission_is_recorded_once,
    the_city_assigns_answers_and_closes_a_submission,
);

const OTHER_EXPERT: &str = "exp_0192f0c8a1b27c3d8e4f5a6b7c8d9e99";

fn as_role(service: &RunningService, role: Role, bureau: Option<Bureau>) -> DispatchServiceClient<AuthedChannel> {
    DispatchServiceClient::new(service.as_role(role, bureau))
}

fn as_expert(service: &RunningService, expert_id: &str) -> DispatchServiceClient<AuthedChannel> {
    DispatchServiceClient::new(with_token(&service.channel, Some(&expert_token(expert_id))))
}

pub(crate) fn tip_off(request_id: &str, expert_id: &str) -> CreateSubmissionRequest {
    CreateSubmissionRequest {
        request_id: request_id.into(),
        r#type: SubmissionType::TipOff as i32,
        expert_id: expert_id.into(),
        subject: "培训机构虚报培训人数".into(),
        content: "现场核查发现签到表与实际人数不符。".into(),
        ..Default::default()
    }
}

fn ids(resp: supervision_proto::dispatch::ListSubmissionsResponse) -> Vec<String> {
    resp.submissions.into_iter().map(|s| s.id).collect()
}

async fn an_expert_reports_a_tip_off_that_only_the_city_and_they_see(backend: Backend) {
    let service = spawn_dispatch(backend).await;
    let mut expert = as_expert(&service, EXPERT_ID);
    let created = expert.create_submission(tip_off("t-1", EXPERT_ID)).await.unwrap().into_inner().submission.unwrap();
    assert!(created.id.starts_with("sub_"));
    assert_eq!(created.status, SubmissionStatus::Received as i32);

    let err = expert.create_submission(tip_off("t-2", OTHER_EXPERT)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "an expert submits only for themself");

    let get = GetSubmissionRequest { id: created.id.clone() };
    assert_eq!(expert.get_submission(get.clone()).await.unwrap().into_inner().submission.unwrap(), created);
    let city = as_role(&service, Role::CityReviewer, None).get_submission(get.clone()).await.unwrap();
    assert_eq!(city.into_inner().submission.unwrap().id, created.id);
    let county = as_role(&service, Role::CountyOperator, Some(Bureau::Xinhui)).get_submission(get.clone()).await;
    assert_eq!(county.unwrap_err().code(), Code::NotFound, "a tip-off stays with the city");
    let other = as_expert(&service, OTHER_EXPERT).get_submission(get).await;
    assert_eq!(other.unwrap_err().code(), Code::NotFound);
    assert!(
        ids(as_expert(&service, OTHER_EXPERT)
            .list_submissions(ListSubmissionsRequest::default())
            .await
            .unwrap()
            .into_inner())
        .is_empty()
    );
    service.stop().await;
}

async fn staff_enter_a_submission_only_with_how_they_received_it(backend: Backend) {
    let service = spawn_dispatch(backend).await;
    let mut operator = as_role(&service, Role::CityOperator, None);
    let err = operator.create_submission(tip_off("s-1", EXPERT_ID)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.get_error_details().error_info().unwrap().reason, "ON_BEHALF_REQUIRED");

    let received = chrono::Utc::now() - chrono::Duration::hours(3);
    let mut entered = tip_off("s-2", EXPERT_ID);
    entered.on_behalf = Some(OnBehalf {
        channel: EntryChannel::Phone as i32,
        received_time: Some(prost_types::Timestamp { seconds: received.timestamp(), nanos: 0 }),
        note: "专家来电".into(),
    });
    let created = operator.create_submission(entered).await.unwrap().into_inner().submission.unwrap();
    let on_behalf = created.on_behalf.unwrap();
    assert_eq!(on_behalf.channel, EntryChannel::Phone as i32);
    assert_eq!(on_behalf.received_time.unwrap().seconds, received.timestamp());
    // The expert sees what staff entered for them.
    let mine = as_expert(&service, EXPERT_ID).list_submissions(ListSubmissionsRequest::default()).await.unwrap();
    assert_eq!(ids(mine.into_inner()), [created.id]);
    service.stop().await;
}

async fn a_county_reports_to_the_city_for_itself_only(backend: Backend) {
    let service = spawn_dispatch(backend).await;
    let report = |request_id: &str, county: BureauCode| CreateSubmissionRequest {
        request_id: request_id.into(),
        r#type: SubmissionType::CountyReport as i32,
        submitting_bureau: county as i32,
        subject: "第三季度监督评估工作情况".into(),
        content: "本季度共派出专家 12 人次。".into(),
        ..Default::default()
    };
    let mut taishan = as_role(&service, Role::CountyOperator, Some(Bureau::Taishan));
    let err = taishan.create_submission(report("c-1", BureauCode::Kaiping)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let created = taishan.create_submission(report("c-2", BureauCode::Taishan)).await.unwrap().into_inner();
    let id = created.submission.unwrap().id;
    assert_eq!(
        ids(taishan.list_submissions(ListSubmissionsRequest::default()).await.unwrap().into_inner()),
        std::slice::from_ref(&id)
    );
    let mut kaiping = as_role(&service, Role::CountyOperator, Some(Bureau::Kaiping));
    assert!(ids(kaiping.list_submissions(ListSubmissionsRequest::default()).await.unwrap().into_inner()).is_empty());
    let mut admin = as_role(&service, Role::CityAdmin, None);
    assert_eq!(ids(admin.list_submissions(ListSubmissionsRequest::default()).await.unwrap().into_inner()), [id]);
    service.stop().await;
}

async fn a_retried_submission_is_recorded_once(backend: Backend) {
    let service = spawn_dispatch(backend).await;
    let mut expert = as_expert(&service, EXPERT_ID);
    let first = expert.create_submission(tip_off("same", EXPERT_ID)).await.unwrap().into_inner();
    let again = expert.create_submission(tip_off("same", EXPERT_ID)).await.unwrap().into_inner();
    assert_eq!(first, again);
    let listed = expert.list_submissions(ListSubmissionsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.submissions.len(), 1);
    service.stop().await;
}

async fn the_city_assigns_answers_and_closes_a_submission(backend: Backend) {
    let service = spawn_dispatch(backend).await;
    let created = as_expert(&service, EXPERT_ID)
        .create_submission(tip_off("t-flow", EXPERT_ID))
        .await
        .unwrap()
        .into_inner()
        .submission
        .unwrap();
    let user = |subject: &str, role: Role| {
        let token = testkit::identity::token_for(supervision_kit::auth::TokenRequest {
            subject: subject.into(),
            role,
            bureau: None,
            expert_id: None,
            ttl: std::time::Duration::from_secs(3600),
        });
        DispatchServiceClient::new(with_token(&service.channel, Some(&token)))
    };
    let mut admin = user("city-admin", Role::CityAdmin);
    let mut handler = user("city-op-1", Role::CityOperator);
    let mut bystander = user("city-op-2", Role::CityOperator);
    let answer = |request_id: &str| AnswerSubmissionRequest {
        request_id: request_id.into(),
        submission_id: created.id.clone(),
        answer: "已转稽查科核查，情况属实，已责令整改。".into(),
    };
    // Not answered before it is assigned; only CITY_ADMIN assigns.
    let err = handler.answer_submission(answer("ans-0")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let assign = AssignSubmissionRequest {
        request_id: "as-1".into(),
        submission_id: created.id.clone(),
        handler: "city-op-1".into(),
        note: "请核查".into(),
    };
    assert_eq!(handler.assign_submission(assign.clone()).await.unwrap_err().code(), Code::PermissionDenied);
    let blank = AssignSubmissionRequest { handler: " ".into(), request_id: "as-0".into(), ..assign.clone() };
    assert_eq!(admin.assign_submission(blank).await.unwrap_err().code(), Code::InvalidArgument);
    let assigned = admin.assign_submission(assign.clone()).await.unwrap().into_inner().submission.unwrap();
    assert_eq!((assigned.status, assigned.handler.as_str()), (SubmissionStatus::Assigned as i32, "city-op-1"));
    assert_eq!(admin.assign_submission(assign).await.unwrap().into_inner().submission.unwrap(), assigned, "a retry");

    // Only the handler (or a CITY_ADMIN) answers and closes.
    let err = bystander.answer_submission(answer("ans-1")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let answered = handler.answer_submission(answer("ans-2")).await.unwrap().into_inner().submission.unwrap();
    assert_eq!(answered.status, SubmissionStatus::Answered as i32);
    assert!(answered.answer.starts_with("已转稽查科"));
    let close = |request_id: &str, task: &str| CloseSubmissionRequest {
        request_id: request_id.into(),
        submission_id: created.id.clone(),
        note: "处理完毕".into(),
        follow_up_task_id: task.into(),
    };
    let missing = close("cl-0", "tsk_0192f0c8a1b27c3d8e4f5a6b7c8d9e99");
    assert_eq!(handler.close_submission(missing).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(handler.close_submission(close("cl-1", "nope")).await.unwrap_err().code(), Code::InvalidArgument);
    let closed = handler.close_submission(close("cl-2", "")).await.unwrap().into_inner().submission.unwrap();
    assert_eq!((closed.status, closed.close_note.as_str()), (SubmissionStatus::Closed as i32, "处理完毕"));
    let err = admin.close_submission(close("cl-3", "")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "closed is final");
    // The expert reads the outcome of their own submission.
    let read = as_expert(&service, EXPERT_ID)
        .get_submission(GetSubmissionRequest { id: created.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .submission
        .unwrap();
    assert_eq!(read, closed);
    service.stop().await;
}
