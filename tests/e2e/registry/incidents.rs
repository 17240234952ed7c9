//! Incidents (articles 9, 12; D4; DOMAIN.md 5.16, 6.8) through the public API: dispatch sends
//! late declines and no-shows once per assignment, staff record breaches and false materials, a
//! county refers, the expert explains, the city bureau alone decides, and a suspension or a
//! termination moves the expert's status through the status-change use case.

use supervision_proto::{
    common::{BureauCode, EntryChannel, Evidence, OnBehalf},
    registry::{
        CertificateStatus, DecideIncidentRequest, DisciplineRule, ExpertStatus, GetExpertRequest, GetIncidentRequest,
        Incident, IncidentFinding, IncidentKind, IncidentOutcome, IncidentSource, IncidentStatus, ListIncidentsRequest,
        RecordIncidentRequest, RecordIncidentStatementRequest, StatusChangeGround, TerminateExpertRequest,
        TerminationGround, registry_service_client::RegistryServiceClient,
    },
};
use testkit::{
    AuthedChannel, Backend, Bureau, Role, RunningService, identity::expert_token, on_both_backends, service_acting_for,
    spawn_registry, with_token,
};
use tonic::Code;

use crate::appointments::{admin, appoint, appoint_request, id, reason_of, today, violated_fields};

on_both_backends!(
    dispatch_records_a_late_decline_once_per_assignment_and_never_terminates,
    a_county_refers_the_expert_explains_and_only_the_city_decides,
    a_suspension_or_termination_decision_moves_the_status_through_the_outbox,
    a_termination_for_discipline_needs_a_substantiated_incident,
);

const ID_A: &str = "440703198506150029";
const ID_B: &str = "440781197203040118";

fn dispatch(registry: &RunningService) -> RegistryServiceClient<AuthedChannel> {
    RegistryServiceClient::new(service_acting_for(&registry.channel, "dispatch", Role::CityOperator, None))
}

fn county(registry: &RunningService, bureau: Bureau) -> RegistryServiceClient<AuthedChannel> {
    RegistryServiceClient::new(registry.as_role(Role::CountyOperator, Some(bureau)))
}

fn expert(registry: &RunningService, expert_id: &str) -> RegistryServiceClient<AuthedChannel> {
    RegistryServiceClient::new(with_token(&registry.channel, Some(&expert_token(expert_id))))
}

async fn appointed(registry: &RunningService, name: &str, number: &str) -> String {
    appoint(registry, appoint_request(name, number, Some(today()))).await.expert.unwrap().id
}

fn late_decline(expert_id: &str, assignment: &str) -> RecordIncidentRequest {
    RecordIncidentRequest {
        request_id: format!("{assignment}:late_decline"),
        expert_id: expert_id.into(),
        kind: IncidentKind::LateDecline as i32,
        source: IncidentSource::Dispatch as i32,
        assignment_id: assignment.into(),
        reporting_bureau: BureauCode::Xinhui as i32,
        description: "在截止时间后婉拒".into(),
        ..Default::default()
    }
}

fn breach(expert_id: &str, rule: DisciplineRule) -> RecordIncidentRequest {
    RecordIncidentRequest {
        request_id: id(),
        expert_id: expert_id.into(),
        kind: IncidentKind::DisciplineBreach as i32,
        rule: rule as i32,
        source: IncidentSource::Institution as i32,
        description: "机构投诉".into(),
        evidence: Some(Evidence { description: "投诉信".into(), documents: vec![] }),
        ..Default::default()
    }
}

async fn record(c: &mut RegistryServiceClient<AuthedChannel>, req: RecordIncidentRequest) -> Incident {
    c.record_incident(req).await.unwrap().into_inner().incident.unwrap()
}

fn decision(incident: &str, finding: IncidentFinding, outcome: IncidentOutcome) -> DecideIncidentRequest {
    DecideIncidentRequest {
        request_id: id(),
        incident_id: incident.into(),
        finding: finding as i32,
        outcome: outcome as i32,
        note: "市局决定".into(),
        effective_date: None,
    }
}

async fn status_of(registry: &RunningService, expert_id: &str) -> i32 {
    let got = admin(registry).get_expert(GetExpertRequest { id: expert_id.into() }).await.unwrap().into_inner();
    got.expert.unwrap().status
}

async fn dispatch_records_a_late_decline_once_per_assignment_and_never_terminates(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let expert_id = appointed(&registry, "李明", ID_A).await;
    let assignment = format!("asg_{}", uuid::Uuid::now_v7().simple());
    let mut d = dispatch(&registry);
    let first = record(&mut d, late_decline(&expert_id, &assignment)).await;
    assert!(first.id.starts_with("inc_"));
    assert_eq!(first.rule, DisciplineRule::Notice as i32, "a late decline breaches 9(七)");
    assert_eq!(first.source, IncidentSource::Dispatch as i32);
    assert_eq!(first.status, IncidentStatus::Reported as i32);
    assert_eq!(first.reporting_bureau, BureauCode::Xinhui as i32);
    let again = record(&mut d, late_decline(&expert_id, &assignment)).await;
    assert_eq!(again.id, first.id, "a retry of the same assignment gives the same incident");

    let mut wrong_key = late_decline(&expert_id, &assignment);
    wrong_key.request_id = id();
    let err = d.record_incident(wrong_key).await.unwrap_err();
    assert_eq!(violated_fields(&err), vec!["request_id"]);
    let mut breach_from_dispatch = breach(&expert_id, DisciplineRule::Conduct);
    breach_from_dispatch.source = IncidentSource::Dispatch as i32;
    let err = d.record_incident(breach_from_dispatch).await.unwrap_err();
    assert!(violated_fields(&err).contains(&"kind".to_owned()), "dispatch sends only late declines and no-shows");
    let err = admin(&registry).record_incident(late_decline(&expert_id, &assignment)).await.unwrap_err();
    assert!(violated_fields(&err).contains(&"kind".to_owned()), "staff record no-shows in dispatch (D4)");

    let other = format!("asg_{}", uuid::Uuid::now_v7().simple());
    let no_show = RecordIncidentRequest {
        request_id: format!("{other}:no_show"),
        kind: IncidentKind::NoShow as i32,
        assignment_id: other.clone(),
        ..late_decline(&expert_id, &other)
    };
    record(&mut d, no_show).await;
    let listed = admin(&registry)
        .list_incidents(ListIncidentsRequest { expert_id: expert_id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.incidents.len(), 2, "one incident per assignment and kind");
    assert_eq!(listed.incidents[0].kind, IncidentKind::NoShow as i32, "newest first");
    let by_assignment = admin(&registry)
        .list_incidents(ListIncidentsRequest { assignment_id: assignment.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_assignment.incidents.len(), 1);
    assert_eq!(status_of(&registry, &expert_id).await, ExpertStatus::Active as i32, "D4: never automatic");
    registry.stop().await;
}

async fn a_county_refers_the_expert_explains_and_only_the_city_decides(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let expert_id = appointed(&registry, "李明", ID_A).await;
    let mut xinhui = county(&registry, Bureau::Xinhui);
    let incident = record(&mut xinhui, breach(&expert_id, DisciplineRule::Confidentiality)).await;
    assert_eq!(incident.reporting_bureau, BureauCode::Xinhui as i32, "a county refers as its own bureau");
    assert_eq!(incident.recorded_by.as_ref().unwrap().role, supervision_proto::common::Role::CountyOperator as i32);
    let mut for_another = breach(&expert_id, DisciplineRule::Conduct);
    for_another.reporting_bureau = BureauCode::Taishan as i32;
    let err = xinhui.record_incident(for_another).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = xinhui
        .decide_incident(decision(&incident.id, IncidentFinding::Substantiated, IncidentOutcome::Warning))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "only the city bureau decides");
    let mut taishan = county(&registry, Bureau::Taishan);
    let err = taishan.get_incident(GetIncidentRequest { id: incident.id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "a county sees the incidents it reported");
    let seen = taishan.list_incidents(ListIncidentsRequest::default()).await.unwrap().into_inner();
    assert!(seen.incidents.is_empty());

    let statement = |on_behalf: Option<OnBehalf>| RecordIncidentStatementRequest {
        request_id: id(),
        incident_id: incident.id.clone(),
        text: "当时并未泄露信息".into(),
        evidence: None,
        on_behalf,
    };
    let err = admin(&registry).record_incident_statement(statement(None)).await.unwrap_err();
    assert_eq!(violated_fields(&err), vec!["on_behalf"], "staff say how they received it (D16)");
    let other_id = appointed(&registry, "王芳", ID_B).await;
    let err = expert(&registry, &other_id).record_incident_statement(statement(None)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "an expert explains only their own incidents");
    let explained =
        expert(&registry, &expert_id).record_incident_statement(statement(None)).await.unwrap().into_inner();
    let explained = explained.incident.unwrap();
    assert_eq!(explained.status, IncidentStatus::UnderInvestigation as i32);
    assert_eq!(explained.statements.len(), 1);
    let by_phone = OnBehalf {
        channel: EntryChannel::Phone as i32,
        received_time: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() - 60, nanos: 0 }),
        note: String::new(),
    };
    xinhui.record_incident_statement(statement(Some(by_phone))).await.unwrap();

    let mut city = admin(&registry);
    let err = city
        .decide_incident(decision(&incident.id, IncidentFinding::NotSubstantiated, IncidentOutcome::Termination))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), vec!["outcome"], "termination needs 查实");
    let decided = city
        .decide_incident(decision(&incident.id, IncidentFinding::Substantiated, IncidentOutcome::Warning))
        .await
        .unwrap()
        .into_inner();
    assert!(decided.change.is_none(), "a warning changes no status");
    let decided = decided.incident.unwrap();
    assert_eq!(decided.status, IncidentStatus::Decided as i32);
    assert_eq!(decided.statements.len(), 2);
    let d = decided.decision.unwrap();
    assert_eq!(d.outcome, IncidentOutcome::Warning as i32);
    assert_eq!(d.decided_by.unwrap().role, supervision_proto::common::Role::CityAdmin as i32);
    let err = city
        .decide_incident(decision(&incident.id, IncidentFinding::Substantiated, IncidentOutcome::Note))
        .await
        .unwrap_err();
    assert_eq!(reason_of(&err), "INCIDENT_ALREADY_DECIDED");
    let err = expert(&registry, &expert_id).record_incident_statement(statement(None)).await.unwrap_err();
    assert_eq!(reason_of(&err), "INCIDENT_ALREADY_DECIDED");
    let own = expert(&registry, &expert_id).list_incidents(ListIncidentsRequest::default()).await.unwrap();
    assert_eq!(own.into_inner().incidents.len(), 1, "the expert sees their own");
    assert_eq!(status_of(&registry, &expert_id).await, ExpertStatus::Active as i32);
    registry.stop().await;
}

async fn a_suspension_or_termination_decision_moves_the_status_through_the_outbox(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let first = appointed(&registry, "李明", ID_A).await;
    let second = appointed(&registry, "王芳", ID_B).await;
    let mut city = admin(&registry);
    let incident = record(&mut city, breach(&first, DisciplineRule::Integrity)).await;
    let suspended = city
        .decide_incident(decision(&incident.id, IncidentFinding::Substantiated, IncidentOutcome::Suspension))
        .await
        .unwrap()
        .into_inner();
    let change = suspended.change.unwrap();
    assert_eq!(change.ground, StatusChangeGround::Suspended as i32);
    assert_eq!(change.incident_id, incident.id);
    assert_eq!(suspended.incident.unwrap().decision.unwrap().status_change_id, change.id);
    assert_eq!(status_of(&registry, &first).await, ExpertStatus::Suspended as i32);

    let mut reviewer = RegistryServiceClient::new(registry.as_role(Role::CityReviewer, None));
    let false_materials = RecordIncidentRequest {
        request_id: id(),
        expert_id: second.clone(),
        kind: IncidentKind::FalseMaterials as i32,
        source: IncidentSource::Public as i32,
        description: "申报材料造假".into(),
        ..Default::default()
    };
    let incident = record(&mut reviewer, false_materials).await;
    let terminated = city
        .decide_incident(decision(&incident.id, IncidentFinding::Substantiated, IncidentOutcome::Termination))
        .await
        .unwrap()
        .into_inner();
    let change = terminated.change.unwrap();
    assert_eq!(change.ground, StatusChangeGround::FalseMaterials as i32, "12(二)");
    assert_eq!(change.status, ExpertStatus::Terminated as i32);
    assert_eq!(change.certificate_status, CertificateStatus::Revoked as i32);
    let queued = queued_for_dispatch(&registry).await;
    assert!(queued.contains(&change.id), "the change goes to dispatch (D17)");
    registry.stop().await;
}

async fn a_termination_for_discipline_needs_a_substantiated_incident(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let expert_id = appointed(&registry, "李明", ID_A).await;
    let mut city = admin(&registry);
    let terminate = |incident: &str| TerminateExpertRequest {
        request_id: id(),
        expert_id: expert_id.clone(),
        ground: TerminationGround::Discipline as i32,
        incident_id: incident.into(),
        reason: "违反工作纪律".into(),
        evidence: Some(Evidence { description: "决定书".into(), documents: vec![] }),
        ..Default::default()
    };
    let unknown = format!("inc_{}", uuid::Uuid::now_v7().simple());
    let err = city.terminate_expert(terminate(&unknown)).await.unwrap_err();
    assert_eq!(reason_of(&err), "INCIDENT_NOT_SUBSTANTIATED");
    let open = record(&mut city, breach(&expert_id, DisciplineRule::Objectivity)).await;
    let err = city.terminate_expert(terminate(&open.id)).await.unwrap_err();
    assert_eq!(reason_of(&err), "INCIDENT_NOT_SUBSTANTIATED", "not decided yet");
    city.decide_incident(decision(&open.id, IncidentFinding::NotSubstantiated, IncidentOutcome::NoAction))
        .await
        .unwrap();
    let err = city.terminate_expert(terminate(&open.id)).await.unwrap_err();
    assert_eq!(reason_of(&err), "INCIDENT_NOT_SUBSTANTIATED", "not 查实");
    let proven = record(&mut city, breach(&expert_id, DisciplineRule::Scope)).await;
    city.decide_incident(decision(&proven.id, IncidentFinding::Substantiated, IncidentOutcome::Warning)).await.unwrap();
    let done = city.terminate_expert(terminate(&proven.id)).await.unwrap().into_inner();
    assert_eq!(done.change.unwrap().status, ExpertStatus::Terminated as i32);
    registry.stop().await;
}

/// Rows the outbox holds for dispatch's ExpertStatusChanged.
pub(crate) async fn queued_for_dispatch(registry: &RunningService) -> Vec<String> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(registry.database_url()).await.unwrap();
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT idempotency_key FROM kit_outbox WHERE destination = 'dispatch' \
         AND method = '/supervision.dispatch.v1.DispatchService/ExpertStatusChanged' ORDER BY idempotency_key",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    keys
}
