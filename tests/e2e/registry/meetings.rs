//! Meetings (article 13), policy training (article 4), experts' publicity help (article 8(四)) and
//! the yearly compliance view, through the public API.

use supervision_proto::{
    common::{BureauCode, EntryChannel, OnBehalf},
    registry::{
        CreateMeetingRequest, CreateTrainingRequest, GetExpertRequest, GetMeetingRequest, GetYearlyComplianceRequest,
        ListMeetingsRequest, ListPublicityActivitiesRequest, ListTrainingsRequest, MeetingOpinion, MeetingType,
        RecordMeetingAttendanceRequest, RecordMeetingMinutesRequest, RecordPublicityActivityRequest,
        RecordTrainingAttendanceRequest, TrainingAttendance, registry_service_client::RegistryServiceClient,
    },
};
use testkit::{
    AuthedChannel, Backend, Bureau, Role, RunningService, identity::expert_token, on_both_backends, spawn_registry,
    with_token,
};
use tonic::Code;

use crate::appointments::{admin, appoint, appoint_request, id, today, violated_fields};

on_both_backends!(
    a_plenary_invites_every_active_expert_and_counts_for_the_year,
    training_attendance_sets_the_trained_flag,
    an_expert_logs_their_own_publicity_and_a_county_its_own,
);

const ID_A: &str = "440703198506150029";
const ID_B: &str = "440781197203040118";

fn expert(registry: &RunningService, expert_id: &str) -> RegistryServiceClient<AuthedChannel> {
    RegistryServiceClient::new(with_token(&registry.channel, Some(&expert_token(expert_id))))
}

async fn two_experts(registry: &RunningService) -> (String, String) {
    let a = appoint(registry, appoint_request("李明", ID_A, Some(today()))).await.expert.unwrap().id;
    let b = appoint(registry, appoint_request("王芳", ID_B, Some(today()))).await.expert.unwrap().id;
    (a, b)
}

async fn compliance(registry: &RunningService) -> supervision_proto::registry::GetYearlyComplianceResponse {
    let req = GetYearlyComplianceRequest { year: today().year };
    admin(registry).get_yearly_compliance(req).await.unwrap().into_inner()
}

async fn a_plenary_invites_every_active_expert_and_counts_for_the_year(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let (a, b) = two_experts(&registry).await;
    let before = compliance(&registry).await;
    assert_eq!(before.plenary_meetings, 0);
    assert_eq!(before.required_plenary_meetings, 1);
    assert!(before.warnings.iter().any(|w| w.contains("article 13")), "{:?}", before.warnings);

    let mut city = admin(&registry);
    let thematic = CreateMeetingRequest {
        request_id: id(),
        r#type: MeetingType::Thematic as i32,
        title: "专题会议".into(),
        date: Some(today()),
        ..Default::default()
    };
    let err = city.create_meeting(thematic.clone()).await.unwrap_err();
    assert_eq!(violated_fields(&err), vec!["invited_expert_ids"], "a thematic meeting names its invitees");
    let thematic = city
        .create_meeting(CreateMeetingRequest { invited_expert_ids: vec![b.clone()], ..thematic })
        .await
        .unwrap()
        .into_inner()
        .meeting
        .unwrap();
    let plenary = CreateMeetingRequest {
        request_id: id(),
        r#type: MeetingType::Plenary as i32,
        title: "年度全体会议".into(),
        date: Some(today()),
        location: "市人社局".into(),
        agenda: "总结工作".into(),
        invited_expert_ids: vec![],
    };
    let plenary = city.create_meeting(plenary).await.unwrap().into_inner().meeting.unwrap();
    let mut invited = plenary.invited_expert_ids.clone();
    invited.sort();
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(invited, both, "every active expert is invited to a plenary");

    let err = city
        .record_meeting_attendance(RecordMeetingAttendanceRequest {
            request_id: id(),
            meeting_id: thematic.id.clone(),
            attended_expert_ids: vec![a.clone()],
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), vec!["attended_expert_ids[0]"], "only invitees attend");
    let attended = city
        .record_meeting_attendance(RecordMeetingAttendanceRequest {
            request_id: id(),
            meeting_id: plenary.id.clone(),
            attended_expert_ids: vec![a.clone()],
        })
        .await
        .unwrap()
        .into_inner()
        .meeting
        .unwrap();
    assert_eq!(attended.attended_expert_ids, vec![a.clone()]);
    let minuted = city
        .record_meeting_minutes(RecordMeetingMinutesRequest {
            request_id: id(),
            meeting_id: plenary.id.clone(),
            minutes: "会议纪要".into(),
            opinions: vec![MeetingOpinion {
                expert_id: a.clone(),
                text: "建议增加培训".into(),
                submission_id: String::new(),
            }],
        })
        .await
        .unwrap()
        .into_inner()
        .meeting
        .unwrap();
    assert_eq!(minuted.opinions.len(), 1);
    assert_eq!(minuted.attended_expert_ids, vec![a.clone()], "minutes keep the attendance");

    let seen = expert(&registry, &a).list_meetings(ListMeetingsRequest::default()).await.unwrap().into_inner();
    assert_eq!(seen.meetings.len(), 1, "an expert sees the meetings they were invited to");
    let err = expert(&registry, &a).get_meeting(GetMeetingRequest { id: thematic.id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let all = city
        .list_meetings(ListMeetingsRequest { year: today().year, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.meetings.len(), 2);
    assert_eq!(all.meetings[0].id, plenary.id, "newest first");
    let err = RegistryServiceClient::new(registry.as_role(Role::CityOperator, None))
        .create_meeting(CreateMeetingRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    let after = compliance(&registry).await;
    assert_eq!(after.plenary_meetings, 1);
    assert_eq!(after.thematic_meetings, 1);
    assert!(!after.warnings.iter().any(|w| w.contains("article 13")), "{:?}", after.warnings);
    registry.stop().await;
}

async fn training_attendance_sets_the_trained_flag(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let (a, b) = two_experts(&registry).await;
    let mut city = admin(&registry);
    let trained = |id: String| {
        let registry = &registry;
        async move {
            let got = admin(registry).get_expert(GetExpertRequest { id }).await.unwrap().into_inner();
            got.expert.unwrap().trained
        }
    };
    assert!(!trained(a.clone()).await);
    let training = city
        .create_training(CreateTrainingRequest {
            request_id: id(),
            title: "政策培训".into(),
            date: Some(today()),
            content: "办法解读".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .training
        .unwrap();
    let attend = |ids: Vec<String>| RecordTrainingAttendanceRequest {
        request_id: id(),
        training_id: training.id.clone(),
        attendance: ids
            .into_iter()
            .map(|expert_id| TrainingAttendance { expert_id, assessment_result: "合格".into() })
            .collect(),
    };
    city.record_training_attendance(attend(vec![a.clone(), b.clone()])).await.unwrap();
    assert!(trained(a.clone()).await && trained(b.clone()).await, "attendance sets the trained flag");
    let untrained = compliance(&registry).await.untrained_active_experts;
    assert_eq!(untrained, 0);
    city.record_training_attendance(attend(vec![a.clone()])).await.unwrap();
    assert!(!trained(b.clone()).await, "taken off the only session's list");
    assert_eq!(compliance(&registry).await.trainings, 1);
    let own = expert(&registry, &b).list_trainings(ListTrainingsRequest::default()).await.unwrap().into_inner();
    assert!(own.trainings.is_empty(), "an expert sees the sessions they attended");
    let own = expert(&registry, &a).list_trainings(ListTrainingsRequest::default()).await.unwrap().into_inner();
    assert_eq!(own.trainings.len(), 1);
    registry.stop().await;
}

async fn an_expert_logs_their_own_publicity_and_a_county_its_own(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let (a, b) = two_experts(&registry).await;
    let activity = |expert_id: &str, bureau: BureauCode, on_behalf: Option<OnBehalf>| RecordPublicityActivityRequest {
        request_id: id(),
        expert_id: expert_id.into(),
        date: Some(today()),
        bureau: bureau as i32,
        topic: "职业技能提升补贴政策".into(),
        audience: "某企业职工约 60 人".into(),
        description: String::new(),
        evidence: None,
        on_behalf,
    };
    let logged = expert(&registry, &a)
        .record_publicity_activity(activity(&a, BureauCode::Xinhui, None))
        .await
        .unwrap()
        .into_inner()
        .activity
        .unwrap();
    assert!(logged.id.starts_with("act_"));
    let err =
        expert(&registry, &a).record_publicity_activity(activity(&b, BureauCode::Xinhui, None)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "an expert logs only their own");
    let by_phone = || {
        Some(OnBehalf {
            channel: EntryChannel::Phone as i32,
            received_time: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() - 60, nanos: 0 }),
            note: String::new(),
        })
    };
    let mut xinhui = RegistryServiceClient::new(registry.as_role(Role::CountyOperator, Some(Bureau::Xinhui)));
    let err = xinhui.record_publicity_activity(activity(&b, BureauCode::Xinhui, None)).await.unwrap_err();
    assert_eq!(violated_fields(&err), vec!["on_behalf"], "staff say how it arrived (D16)");
    let err = xinhui.record_publicity_activity(activity(&b, BureauCode::Taishan, by_phone())).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "a county logs for its own bureau");
    xinhui.record_publicity_activity(activity(&b, BureauCode::Xinhui, by_phone())).await.unwrap();
    let mut taishan = RegistryServiceClient::new(registry.as_role(Role::CountyOperator, Some(Bureau::Taishan)));
    let seen = taishan.list_publicity_activities(ListPublicityActivitiesRequest::default()).await.unwrap().into_inner();
    assert!(seen.activities.is_empty(), "a county sees its own bureau's");
    let seen = xinhui.list_publicity_activities(ListPublicityActivitiesRequest::default()).await.unwrap().into_inner();
    assert_eq!(seen.activities.len(), 2);
    let own = expert(&registry, &a)
        .list_publicity_activities(ListPublicityActivitiesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.activities.len(), 1);
    assert_eq!(compliance(&registry).await.publicity_activities, 2);
    registry.stop().await;
}
